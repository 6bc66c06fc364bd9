"""Packed (decode-speed) weights for the V4 model: bf16/int8/int4 copies of the projections, experts and LM
head, with the projections that read the same input fused. Checked against the fp32 model on the same
weights, and the cached one-token path against the full forward of the same packed model."""

from __future__ import annotations

import pytest
import torch

from dsv4.runtime.deepseek_v4.weights import PackedWeight, head_logits

from .tiny import random_model, tiny_config

VOCAB = 2000


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, VOCAB, (70,), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def reference(ids):
    return random_model(tiny_config(vocab=VOCAB), seed=1)(ids)


# max |packed - fp32| relative to max |fp32|, share of positions with the same argmax, and how far the
# cached path (one prefill chunk, then one token at a time) may drift from the full forward of the same model
BOUNDS = {"bf16": (0.02, 0.9, 1e-4), "int8": (0.1, 0.9, 1e-4), "int4": (0.3, 0.75, 0.2)}


@pytest.mark.parametrize("fmt", ["bf16", "int8", "int4"])
def test_packed_model_tracks_fp32_and_its_own_full_forward(fmt, ids, reference):
    model = random_model(tiny_config(vocab=VOCAB), seed=1)
    model.pack_weights(fmt)
    assert model.weight_format == fmt and model.head.weight.numel() == 0
    assert all(p.numel() == 0 for n, p in model.named_parameters() if n.endswith(("wq_a.weight", "experts.w1")))
    full = model(ids)
    rel, agree, drift = BOUNDS[fmt]
    assert torch.isfinite(full).all()
    assert (full - reference).abs().max() / reference.abs().max() < rel
    assert (full.argmax(-1) == reference.argmax(-1)).float().mean() >= agree
    cache = model.new_cache()
    steps = torch.cat([model(ids[:33], cache)] + [model(ids[i:i + 1], cache) for i in range(33, len(ids))])
    assert (steps - full).abs().max() < drift


def test_fused_projections_equal_separate_ones():
    """The fused x-projection of a packed layer is the same rows as packing each projection alone."""
    model = random_model(tiny_config(vocab=VOCAB), seed=2)
    attn = model.layers[1].attn  # a CSA layer: all seven projections
    weights = [p.weight.detach().clone() for p in attn.x_projections()]
    x = torch.randn(5, model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    attn.pack("int8")
    fused = attn.project(x)
    assert len(fused) == 7
    for got, w in zip(fused, weights):
        assert torch.equal(got, PackedWeight(w, "int8")(x))


def test_head_refines_the_best_candidates_in_fp32():
    g = torch.Generator().manual_seed(5)
    w = torch.randn(3000, 64, generator=g)
    h = torch.randn(2, 64, generator=g)
    packed = PackedWeight(w, "int8")
    got = head_logits(packed, h)
    exact = h @ w.T
    top = got.topk(16, dim=-1).indices
    for t in range(2):  # the best 16 of each row: fp32 products of the dequantised int8 rows
        assert torch.allclose(got[t, top[t]], packed.rows(top[t]) @ h[t], atol=1e-5)
    coarse = packed(h)
    assert not torch.equal(got, coarse) and (got - exact).abs().max() < 0.1 * exact.abs().max()


def test_int4_falls_back_to_int8_for_shapes_it_cannot_pack():
    assert PackedWeight(torch.randn(24, 64), "int4").fmt == "int8"  # rows not a multiple of 16
    assert PackedWeight(torch.randn(32, 48), "int4").fmt == "int8"  # K not whole groups of 32
    assert PackedWeight(torch.randn(32, 64), "int4").fmt == "int4"


def test_packing_refuses_official_numerics_and_repacking():
    model = random_model(tiny_config(vocab=VOCAB), seed=1)
    model.set_numerics("official")
    with pytest.raises(ValueError, match="exact numerics"):
        model.pack_weights("int8")
    model.set_numerics("exact")
    model.pack_weights("int8")
    with pytest.raises(ValueError, match="already packed"):
        model.pack_weights("bf16")
    with pytest.raises(ValueError, match="official numerics"):
        model.set_numerics("official")
    with pytest.raises(ValueError, match="weights must be"):
        random_model(tiny_config(vocab=VOCAB), seed=1).pack_weights("fp8")
