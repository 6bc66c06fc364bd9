"""Parity with transformers' DeepseekV4ForCausalLM on tiny random configs (exact numerics, fp32).

Both models get the same random weights (transformers' state dict, renamed by our HF-layout loader).
The oracle's indexer top-k runs with our deterministic tie rule (score desc, then lower index).
"""

import pytest
import torch

pytest.importorskip("transformers")
from transformers import DynamicCache  # noqa: E402

from .oracle import build_pair, hf_kwargs, oracle_tie_rule  # noqa: E402

TOL = 1e-4

CONFIGS = {
    # all three kinds, hash + learned routing, YaRN on compressed layers
    "mixed_yarn": dict(ratios=[0, 4, 8, 4], hca=8, hash_layers=1, yarn=True, topk=3, window=8),
    # two hash layers, HCA first, no YaRN, wider indexer, top-k 2
    "hca_first_noyarn": dict(ratios=[8, 4, 0], hca=8, hash_layers=2, yarn=False, topk=2, window=6, idx_heads=3),
    # larger heads/rope, HCA ratio 16, window 16, top-k 5
    "wide": dict(ratios=[4, 16, 0, 4], hca=16, hash_layers=1, yarn=True, topk=5, window=16, heads=2, head_dim=32,
                 rope_factor=0.25, experts=6, top=3),
}


def _pair(name, seed=0):
    c = dict(CONFIGS[name])
    ratios = c.pop("ratios")
    return build_pair(seed, **hf_kwargs(ratios, **c))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_full_prefill_logits(name):
    hf, ours = _pair(name)
    ids = torch.randint(0, 64, (1, 57), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), oracle_tie_rule():
        ref = hf(ids).logits[0]
    got = ours(ids[0])
    assert (ref - got).abs().max().item() < TOL


@pytest.mark.parametrize("name", list(CONFIGS))
def test_prefill_then_20_decode_steps(name):
    hf, ours = _pair(name, seed=3)
    gen = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, 64, (1, 37), generator=gen)
    follow = torch.randint(0, 64, (20,), generator=gen)
    cache = ours.new_cache()
    hcache = DynamicCache(config=hf.config)
    worst = 0.0
    with torch.no_grad(), oracle_tie_rule():
        ref = hf(prompt, past_key_values=hcache, use_cache=True).logits[0, -1]
        got = ours.last_logits(prompt[0], cache)
        worst = max(worst, (ref - got).abs().max().item())
        for t in follow:
            ref = hf(t.view(1, 1), past_key_values=hcache, use_cache=True).logits[0, -1]
            got = ours.last_logits(t.view(1), cache)
            worst = max(worst, (ref - got).abs().max().item())
    assert worst < TOL
    # and the cached run equals one full prefill of the same tokens (our own consistency)
    full = ours(torch.cat((prompt[0], follow)))[-1]
    assert (full - got).abs().max().item() < TOL


@pytest.mark.parametrize("name", list(CONFIGS))
def test_irregular_chunked_prefill(name):
    hf, ours = _pair(name, seed=5)
    ids = torch.randint(0, 64, (61,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad(), oracle_tie_rule():
        ref = hf(ids[None]).logits[0]
    cache = ours.new_cache()
    outs, pos = [], 0
    for size in (5, 1, 3, 11, 2, 7, 1, 13, 18):
        outs.append(ours(ids[pos:pos + size], cache))
        pos += size
    assert pos == 61
    got = torch.cat(outs)
    assert (ref - got).abs().max().item() < TOL


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_long_prompt_prefill_decode_and_chunks(name):
    """Hundreds of tokens: many compressed blocks, top-k far below the visible entries, YaRN positions
    beyond the original context; prefill in uneven chunks, then 20 decode steps, against one oracle pass."""
    hf, ours = _pair(name, seed=8)
    ids = torch.randint(0, 64, (420,), generator=torch.Generator().manual_seed(6))
    with torch.no_grad(), oracle_tie_rule():
        ref = hf(ids[None]).logits[0]
    cache = ours.new_cache()
    outs, pos = [], 0
    for size in (97, 3, 128, 1, 171):
        outs.append(ours(ids[pos:pos + size], cache))
        pos += size
    for _ in range(20):
        outs.append(ours(ids[pos:pos + 1], cache))
        pos += 1
    assert pos == 420
    assert (ref - torch.cat(outs)).abs().max().item() < TOL
