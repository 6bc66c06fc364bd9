"""The one-token mHC path (Python scalars, used by every decode step) against the tensor path that prefill
uses, on the same site and the same streams."""

import torch

from dsv4.runtime.deepseek_v4.mhc import HyperConnection

from .tiny import random_model, tiny_config


def test_one_token_pre_matches_the_batched_form():
    model = random_model(tiny_config(vocab=300), seed=3)
    site: HyperConnection = model.layers[2].hc_ffn
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 4, model.config.hidden_size, generator=g)
    with torch.no_grad():
        batched = site.pre(h)  # T = 3: tensor ops
        for t in range(3):
            single = site.pre(h[t:t + 1])  # T = 1: scalar gates and Sinkhorn
            for a, b in zip(single, batched):
                assert (a[0] - b[t]).abs().max() < 1e-6
    comb = batched[2]
    assert torch.allclose(comb.sum(-1), torch.ones(3, 4), atol=1e-4) and torch.allclose(comb.sum(-2), torch.ones(3, 4), atol=1e-4)


def test_one_token_gates_survive_extreme_pre_activations():
    from dsv4.runtime.deepseek_v4.mhc import one_token_mixes

    z = [-1000.0, 1000.0, 0.0, 5.0] * 2 + [-1000.0, 1000.0, 0.0, 0.0] * 4
    m = one_token_mixes(z, 20, 1e-6)
    assert m[:4] == [1e-6, 1.0 + 1e-6, 0.5 + 1e-6, m[3]] and m[4:6] == [0.0, 2.0]
    assert all(v == v for v in m)  # no NaN
