"""The deterministic top-k tie rule (score descending, then lower index) and what it buys: the indexer picks
the same entries whether the scores arrive in one prefill or split over chunks and decode steps."""

import torch

from dsv4.runtime.deepseek_v4.model import stable_topk

from .tiny import random_model, tiny_config


def test_ties_go_to_the_lower_index():
    s = torch.tensor([[0.0, 0.0, -0.006, 0.014, 0.0, 0.5, float("-inf"), 0.0]])
    assert stable_topk(s, 3).tolist() == [[5, 3, 0]]
    assert stable_topk(s, 5).tolist() == [[5, 3, 0, 1, 4]]
    # the same answer at every length the scores may have (prefill vs decode sees a longer row)
    for n in range(6, 40):
        row = torch.zeros(1, n)
        row[0, 2] = 1.0
        assert stable_topk(row, 3).tolist() == [[2, 0, 1]]


def test_chunked_equals_full_with_many_relu_ties():
    # one indexer head and a small top-k make exact-zero (ReLU) ties at the top-k boundary common
    cfg = tiny_config(vocab=256, layers=(4, 4), topk=2, window=4)
    cfg.index_n_heads = 1
    m = random_model(cfg, seed=3)
    ids = torch.randint(0, 256, (90,), generator=torch.Generator().manual_seed(0))
    full = m(ids)
    cache = m.new_cache()
    parts = [m(ids[:31], cache)] + [m(ids[i:i + 1], cache) for i in range(31, 50)] + [m(ids[50:], cache)]
    assert torch.equal(full.argmax(-1), torch.cat(parts).argmax(-1))
    assert (full - torch.cat(parts)).abs().max().item() < 1e-5


def test_matches_a_stable_descending_sort_on_tie_heavy_rows():
    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        n = int(torch.randint(1, 300, (1,), generator=g))
        k = int(torch.randint(1, n + 1, (1,), generator=g))
        levels = torch.tensor([0.5, -0.0, 0.0, -2.0, float("inf"), float("-inf"), 1e-30])
        s = levels[torch.randint(0, len(levels), (4, n), generator=g)]
        if trial % 3 == 0:
            s = torch.randn(4, n, generator=g)
        want = torch.sort(s, dim=-1, descending=True, stable=True).indices[..., :k]
        assert torch.equal(stable_topk(s, k), want)
