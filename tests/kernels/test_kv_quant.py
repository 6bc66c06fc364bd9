"""KV quantisation for the warm/cold tiers: the references against the model's own quantisers, the kernels
(quantise, dequantise, decode attention over quantised rows) against the references."""

from __future__ import annotations

import pytest
import torch

from .conftest import interpreter, needs_triton, poisoned
from dsv4.kernels import kv_quant as kq
from dsv4.kernels import quant_attention as qa
from dsv4.kernels.sparse_attention import sparse_attention_ref

FORMATS = ["fp8", "int8", "int4"]


def roundtrip_of_the_model(x: torch.Tensor, fmt: str) -> torch.Tensor:
    """What the runtime's own quantisers give back for x: the semantics the KV formats must keep."""
    from dsv4.runtime.deepseek_v4.numerics import fp8_act_roundtrip
    from dsv4.runtime.layers.linear import INT4_GROUP, quantize_groups_int4, quantize_rows_int8

    if fmt == "fp8":
        return fp8_act_roundtrip(x.float(), kq.BLOCK["fp8"])
    if fmt == "int8":
        q, s = quantize_rows_int8(x.float().reshape(-1, kq.BLOCK["int8"]), torch.float32)
        return (q.float() * s[:, None]).reshape(x.shape)
    assert kq.BLOCK["int4"] == INT4_GROUP
    q, sz = quantize_groups_int4(x.float())
    scale, zero = sz[..., 0].T.repeat_interleave(INT4_GROUP, 1), sz[..., 1].T.repeat_interleave(INT4_GROUP, 1)
    return (q.float() - 8.0) * scale + zero


def rows(gen, N=5, D=128):
    x = torch.randn(N, D, generator=gen) * torch.rand(N, 1, generator=gen) * 4
    x[0, :64] = 0.0  # an all-zero block: the scale floors
    return x


@pytest.mark.parametrize("fmt", FORMATS)
def test_reference_round_trip_is_the_model_quantiser(fmt: str, gen) -> None:
    x = rows(gen)
    qkv = kq.quantize_kv_ref(x, fmt)
    assert torch.equal(kq.dequantize_kv_ref(qkv), roundtrip_of_the_model(x, fmt))
    per_element = {"fp8": 1 + 4 / 64, "int8": 1 + 4 / 64, "int4": 0.5 + 8 / 32}[fmt]  # codes + scales (+ zeros)
    assert qkv.nbytes() == x.numel() * per_element


def test_fp8_round_trip_is_the_kv_numerics(gen) -> None:
    from dsv4.runtime.deepseek_v4.numerics import kv_fp8_roundtrip

    x = rows(gen, D=192)  # 128 non-RoPE dims + 64 RoPE dims
    nope = kq.dequantize_kv_ref(kq.quantize_kv_ref(x[:, :128].contiguous(), "fp8"))
    assert torch.equal(torch.cat((nope, x[:, 128:]), 1), kv_fp8_roundtrip(x, 64))


@needs_triton
@interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("fmt", FORMATS)
def test_kernels_match_reference(fmt: str, dtype, gen) -> None:
    x = rows(gen, N=7, D=192).to(dtype)
    want = kq.quantize_kv_ref(x, fmt)
    width = 96 if fmt == "int4" else 192
    out = kq.QuantizedKV(fmt, torch.full((7, width), 0x7F, dtype=want.codes.dtype), poisoned(want.scale.shape),
                         poisoned(want.scale.shape) if fmt == "int4" else None, 192)
    got = kq.quantize_kv(x, fmt, out=out)
    assert torch.equal(got.codes, want.codes)
    assert torch.equal(got.scale, want.scale)
    if fmt == "int4":
        assert torch.equal(got.zero, want.zero)
    back = kq.dequantize_kv(got, torch.float32, out=poisoned((7, 192)))
    assert torch.equal(back, kq.dequantize_kv_ref(want))


@needs_triton
@interpreter
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("N,splits", [(150, None), (3, 4)])
def test_quantised_decode_attention_matches_reference(fmt: str, N: int, splits, gen) -> None:
    H, D = 4, 64
    kv = kq.quantize_kv_ref(torch.randn(N, D, generator=gen), fmt)
    q = torch.randn(1, H, D, generator=gen)
    sink = torch.randn(H, generator=gen)
    got = qa.quant_decode_attention(q, kv, sink, D ** -0.5, out=poisoned((1, H, D)), splits=splits)
    want = qa.quant_decode_attention_ref(q, kv, sink, D ** -0.5)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    full = sparse_attention_ref(q, kq.dequantize_kv_ref(kv), torch.arange(N, dtype=torch.int32)[None], sink, D ** -0.5)
    assert torch.equal(want, full)


@needs_triton
@interpreter
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("W", [70, 0])
def test_decode_over_sparse_candidates_and_quantised_rows(fmt: str, W: int, gen) -> None:
    """The V4 decode with a warm tier: the window and hot rows by index, the selected warm rows quantised."""
    H, D, M, M2 = 4, 64, 20, 90
    kv, comp = torch.randn(M, D, generator=gen), torch.randn(M2, D, generator=gen)
    idx = torch.randint(-1, M + M2, (1, 150), generator=gen, dtype=torch.int32)
    warm = kq.quantize_kv_ref(torch.randn(W, D, generator=gen) * 2, fmt)
    q, sink = torch.randn(1, H, D, generator=gen), torch.randn(H, generator=gen)
    got = qa.sparse_quant_decode_attention(q, kv, idx, sink, D ** -0.5, comp=comp, warm=warm, out=poisoned((1, H, D)))
    want = qa.sparse_quant_decode_attention_ref(q, kv, idx, sink, D ** -0.5, comp=comp, warm=warm)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    pool = torch.cat((kv, comp, kq.dequantize_kv_ref(warm)))
    every = torch.cat((idx, torch.arange(M + M2, M + M2 + W, dtype=torch.int32)[None]), dim=1)
    assert torch.equal(want, sparse_attention_ref(q, pool, every, sink, D ** -0.5))


@needs_triton
def test_launchers_refuse_bad_inputs(gen) -> None:
    with pytest.raises(ValueError, match="blocks of 32"):
        kq.quantize_kv(torch.randn(2, 48), "int4")
    with pytest.raises(ValueError, match="KV format"):
        kq.quantize_kv(torch.randn(2, 64), "fp4")
    kv = kq.quantize_kv_ref(torch.randn(3, 64), "int8")
    with pytest.raises(ValueError, match="64 dims, q has 32"):
        qa.quant_decode_attention(torch.randn(1, 2, 32), kv, torch.zeros(2), 1.0)


@needs_triton
@interpreter
def test_fp8_kernel_rounds_every_value_and_tie_like_torch() -> None:
    grid = torch.arange(0, 127, dtype=torch.uint8).view(torch.float8_e4m3fn).float()  # every finite value >= 0
    mids = (grid[1:] + grid[:-1]) / 2  # ties: round half to even
    vals = torch.cat((grid, mids, -grid, -mids, torch.tensor([447.0, 440.0, 1e-9, -1e-9])))
    vals = torch.cat((vals, torch.zeros((-vals.numel()) % 64)))
    x = vals.view(-1, 64)
    x[:, 0] = 448.0  # every block's scale is 1: the codes are the values' own
    want = kq.quantize_kv_ref(x, "fp8")
    got = kq.quantize_kv(x, "fp8")
    assert torch.equal(got.scale, want.scale) and torch.equal(got.codes, want.codes)
