"""`official` numerics: op-level checks of the FP8 / FP4 rounding simulations against their formulas, and
model-level runs (prefill, chunked prefill, decode) without NaN."""

import math

import pytest
import torch

from dsv4.runtime.deepseek_v4 import numerics as qn


def test_fp8_act_quant_pow2_scale_and_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 256, generator=g) * torch.tensor([[0.01], [3.0], [900.0]])
    y = qn.fp8_act_roundtrip(x, 128)
    for r in range(3):
        for b in range(2):
            blk = x[r, b * 128:(b + 1) * 128]
            amax = max(blk.abs().max().item(), 1e-4)
            s = 2.0 ** math.ceil(math.log2(amax / 448.0))
            assert math.log2(s) == int(math.log2(s))  # a power of two
            want = (blk / s).clamp(-448, 448).to(torch.float8_e4m3fn).float() * s
            assert torch.equal(y[r, b * 128:(b + 1) * 128], want)
    assert torch.equal(qn.fp8_act_roundtrip(y, 128), y)  # idempotent


def test_fp8_amax_floor_and_clamp():
    z = torch.zeros(1, 128)
    assert torch.equal(qn.fp8_act_roundtrip(z), z)
    tiny = torch.full((1, 128), 1e-7)
    s = 2.0 ** math.ceil(math.log2(1e-4 / 448.0))  # the floor decides the scale
    assert torch.equal(qn.fp8_act_roundtrip(tiny), (tiny / s).to(torch.float8_e4m3fn).float() * s)
    big = torch.tensor([[448.0 * 4] + [1.0] * 127])
    out = qn.fp8_act_roundtrip(big)
    assert out[0, 0].item() == 448.0 * 4 and out.abs().max().item() <= 448.0 * 4


def test_kv_fp8_keeps_rope_dims():
    kv = torch.randn(5, 80)
    out = qn.kv_fp8_roundtrip(kv, 16)
    assert torch.equal(out[:, -16:], kv[:, -16:])
    assert torch.equal(out[:, :64], qn.fp8_act_roundtrip(kv[:, :64], 64))


def test_e2m1_rounding_ties_to_even_and_saturation():
    x = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, -0.3, -5.5, 0.1, 2.9])
    want = torch.tensor([0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, -0.5, -6.0, 0.0, 3.0])
    assert torch.equal(qn.e2m1_round(x), want)


def test_fp4_act_quant_formula():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 64, generator=g)
    y = qn.fp4_act_roundtrip(x, 32)
    for r in range(4):
        for b in range(2):
            blk = x[r, b * 32:(b + 1) * 32]
            s = 2.0 ** math.ceil(math.log2(max(blk.abs().max().item(), 6 * 2.0 ** -126) / 6.0))
            assert torch.equal(y[r, b * 32:(b + 1) * 32], qn.e2m1_round(blk / s) * s)
            assert set((y[r, b * 32:(b + 1) * 32] / s).abs().tolist()) <= {0, 0.5, 1, 1.5, 2, 3, 4, 6}


def test_hadamard_is_orthonormal_and_cancels_in_dot_products():
    h = qn.hadamard_matrix(16)
    assert torch.allclose(h @ h.T, torch.eye(16), atol=1e-6)
    q, k = torch.randn(3, 16), torch.randn(5, 16)
    assert torch.allclose(qn.hadamard(q) @ qn.hadamard(k).T, q @ k.T, atol=1e-5)


pytest.importorskip("transformers")


def test_model_runs_in_official_mode():
    from .oracle import build_pair, hf_kwargs

    _, m = build_pair(2, **hf_kwargs([0, 4, 8, 4], head_dim=32, idx_dim=32, rope_factor=0.25))
    ids = torch.randint(0, 64, (50,), generator=torch.Generator().manual_seed(0))
    exact = m(ids)
    m.set_numerics("official")
    off = m(ids)
    assert torch.isfinite(off).all()
    assert not torch.equal(off, exact)  # the simulations do something
    assert (off - exact).abs().max().item() < 0.5 * exact.abs().max().item()
    cache = m.new_cache()
    chunked = torch.cat([m(ids[:17], cache), m(ids[17:18], cache), m(ids[18:], cache)])
    assert torch.isfinite(chunked).all()
    m.set_numerics("exact")
    assert torch.equal(m(ids), exact)
