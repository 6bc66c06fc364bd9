"""FP8 block-scaled and FP4 weights fused into the matmul: the references are the checkpoint loader's
de-quantisation, the kernels (dense and grouped) against them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dsv4.runtime.deepseek_v4.checkpoint import dequant_fp4, dequant_fp8_blocks

from .conftest import interpreter, needs_triton, poisoned
from dsv4.kernels import block_matmul as bm


def fp8_weight(gen, N, K, e8m0=True):
    w = (torch.randn(N, K, generator=gen) * 40).clamp(-448, 448).to(torch.float8_e4m3fn).view(torch.uint8)
    shape = (-(-N // 128), -(-K // 128))
    scale = (torch.randint(118, 126, shape, generator=gen).to(torch.uint8) if e8m0
             else torch.rand(shape, generator=gen) * 0.01 + 0.001)
    return w, scale


def fp4_weight(gen, N, K):
    w = torch.randint(0, 256, (N, K // 2), generator=gen).to(torch.uint8).view(torch.int8)
    scale = torch.randint(120, 130, (N, K // 32), generator=gen).to(torch.uint8)
    return w, scale


def test_references_are_the_checkpoint_dequantisation(gen) -> None:
    x = torch.randn(3, 160, generator=gen)
    w, s = fp8_weight(gen, 130, 160)
    assert torch.equal(bm.block_fp8_linear_ref(x, w.view(torch.float8_e4m3fn), s), F.linear(x, dequant_fp8_blocks(w, s)))
    w4, s4 = fp4_weight(gen, 20, 64)
    assert torch.equal(bm.fp4_linear_ref(x[:, :64], w4, s4), F.linear(x[:, :64], dequant_fp4(w4, s4)))
    offsets = torch.tensor([0, 2, 2, 3], dtype=torch.int32)
    ws, ss = zip(*(fp4_weight(gen, 20, 64) for _ in range(3)))
    grouped = bm.grouped_linear_ref(x[:, :64], torch.stack(ws), torch.stack(ss), offsets, "fp4")
    assert torch.equal(grouped[:2], bm.fp4_linear_ref(x[:2, :64], ws[0], ss[0]))
    assert torch.equal(grouped[2:], bm.fp4_linear_ref(x[2:, :64], ws[2], ss[2]))


TOL = {torch.float32: dict(rtol=1e-4, atol=1e-3), torch.float16: dict(rtol=2e-2, atol=5e-2)}


@needs_triton
@interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("T,N,K,e8m0", [(3, 70, 192, True), (1, 130, 64, False)])
def test_fp8_kernel_matches_reference(T, N, K, e8m0, dtype, gen) -> None:
    x = torch.randn(T, K, generator=gen).to(dtype)
    w, s = fp8_weight(gen, N, K, e8m0)
    out = poisoned((T, N))
    got = bm.block_fp8_linear(x, w, s, out=out)
    torch.testing.assert_close(got, bm.block_fp8_linear_ref(x, w, s), **TOL[dtype])


@needs_triton
@interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("T,N,K", [(2, 40, 96), (17, 16, 32)])
def test_fp4_kernel_matches_reference(T, N, K, dtype, gen) -> None:
    x = torch.randn(T, K, generator=gen).to(dtype)
    w, s = fp4_weight(gen, N, K)
    got = bm.fp4_linear(x, w, s, out=poisoned((T, N)))
    torch.testing.assert_close(got, bm.fp4_linear_ref(x, w, s), **TOL[dtype])


@needs_triton
@interpreter
@pytest.mark.parametrize("fmt", ["fp8", "fp4"])
def test_grouped_kernel_matches_reference(fmt, gen) -> None:
    E, N, K = 4, 24, 64
    counts = [3, 0, 1, 5]
    offsets = torch.tensor([0] + torch.tensor(counts).cumsum(0).tolist(), dtype=torch.int32)
    x = torch.randn(sum(counts), K, generator=gen)
    ws, ss = zip(*((fp8_weight(gen, N, K) if fmt == "fp8" else fp4_weight(gen, N, K)) for _ in range(E)))
    w, s = torch.stack(ws), torch.stack(ss)
    got = bm.grouped_linear(x, w, s, offsets, fmt, out=poisoned((x.shape[0], N)))
    torch.testing.assert_close(got, bm.grouped_linear_ref(x, w, s, offsets, fmt), **TOL[torch.float32])


@needs_triton
def test_launcher_refuses_bad_inputs(gen) -> None:
    x = torch.randn(2, 64, generator=gen)
    w, s = fp4_weight(gen, 16, 64)
    with pytest.raises(ValueError, match="do not fit x"):
        bm.fp4_linear(x[:, :32].contiguous(), w, s)
    with pytest.raises(ValueError, match="FP4 scales"):
        bm.fp4_linear(x, w, s[:, :1].contiguous())
    w8, s8 = fp8_weight(gen, 16, 64)
    with pytest.raises(ValueError, match="FP8 scales"):
        bm.block_fp8_linear(x, w8, s8.float()[:, :0].contiguous())
