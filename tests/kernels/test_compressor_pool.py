"""Compressor pooling: the reference against the model's compressor (fresh and continuing a previous chunk),
the kernel against the reference."""

from __future__ import annotations

import pytest
import torch

from dsv4.runtime.deepseek_v4.attention import Compressor
from dsv4.runtime.deepseek_v4.cache import CompressorState
from dsv4.runtime.deepseek_v4.common import Rotary
from tests.runtime.v4.tiny import tiny_config

from .conftest import interpreter, needs_triton, poisoned
from dsv4.kernels import compressor_pool as cp


@pytest.mark.parametrize("ratio", [4, 128])
def test_reference_is_the_model_compressor(ratio: int, gen: torch.Generator) -> None:
    cfg = tiny_config()
    rotary = Rotary(cfg.rope_head_dim, cfg.compress_rope_theta, cfg)
    comp = Compressor(cfg, ratio, cfg.head_dim, rotary, rotate=False)
    with torch.no_grad():
        comp.ape.copy_(torch.randn(comp.ape.shape, generator=gen))
    width = comp.ape.shape[1]
    state = CompressorState()
    start = 0
    for n_windows in (2, 3):  # the second chunk continues the first's state (the previous half for ratio 4)
        T = n_windows * ratio
        kv, score = torch.randn(T, width, generator=gen), torch.randn(T, width, generator=gen)
        prev = (state.prev_kv, state.prev_score)
        want = comp(kv, score, start, state)
        pooled = cp.compressor_pool_ref(kv, score, comp.ape.detach(), *prev, ratio)
        got = comp.rotary.apply(comp.norm(pooled), comp.rotary.phases(torch.arange(n_windows) * ratio + start))
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        start += T


@needs_triton
@interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("ratio,n,c,with_ape,with_prev", [(4, 3, 24, True, True), (4, 1, 16, False, False),
                                                          (4, 2, 40, True, False), (128, 2, 20, True, False)])
def test_kernel_matches_reference(ratio, n, c, with_ape, with_prev, dtype, gen) -> None:
    width = 2 * c if ratio == 4 else c
    kv = torch.randn(n * ratio, width, generator=gen).to(dtype)
    score = (2 * torch.randn(n * ratio, width, generator=gen)).to(dtype)
    ape = torch.randn(ratio, width, generator=gen) if with_ape else None
    prev = (torch.randn(ratio, c, generator=gen).to(dtype), torch.randn(ratio, c, generator=gen).to(dtype)) if with_prev else (None, None)
    out = poisoned((n, c), dtype)
    got = cp.compressor_pool(kv, score, ape, *prev, ratio, out=out)
    want = cp.compressor_pool_ref(kv, score, ape, *prev, ratio)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(got.float(), want.float(), **tol)


@needs_triton
def test_launcher_refuses_bad_inputs(gen) -> None:
    kv = torch.randn(8, 16, generator=gen)
    with pytest.raises(ValueError, match="whole windows"):
        cp.compressor_pool(kv[:6].contiguous(), kv[:6].contiguous(), None, None, None, 4)
    with pytest.raises(ValueError, match="come together"):
        cp.compressor_pool(kv, kv, None, torch.zeros(4, 8), None, 4)
    with pytest.raises(ValueError, match="power of two"):
        cp.compressor_pool(kv, kv, None, None, None, 3)
