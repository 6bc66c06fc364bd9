"""Lightning-indexer scores and top-k: the reference against the model's indexer, the kernel against the reference
(exactly, on integer-valued inputs whose sums are exact in any order and full of ties)."""

from __future__ import annotations

import pytest
import torch

from dsv4.runtime.deepseek_v4.attention import Indexer
from dsv4.runtime.deepseek_v4.common import Rotary
from tests.runtime.v4.tiny import tiny_config

from .conftest import interpreter, needs_triton, poisoned
from dsv4.kernels import indexer_topk as it


@pytest.mark.parametrize("S,start", [(1, 40), (6, 9), (9, 0)])
def test_reference_is_the_model_indexer(S: int, start: int, gen: torch.Generator) -> None:
    cfg = tiny_config(topk=3)
    rotary = Rotary(cfg.rope_head_dim, cfg.compress_rope_theta, cfg)
    idx_mod = Indexer(cfg, rotary)
    with torch.no_grad():
        idx_mod.wq_b.weight.copy_(torch.randn(idx_mod.wq_b.weight.shape, generator=gen) * 0.2)
    positions = torch.arange(start, start + S)
    n = (start + S) // 4
    qr = torch.randn(S, cfg.q_lora_rank, generator=gen)
    head_w = torch.randn(S, cfg.index_n_heads, generator=gen)
    keys = torch.randn(n, cfg.index_head_dim, generator=gen)
    phases = rotary.phases(positions)
    want = idx_mod(qr, head_w, phases, positions, keys)
    q = rotary.apply(idx_mod.wq_b(qr).view(S, idx_mod.n_heads, idx_mod.head_dim), phases)
    w = head_w * (idx_mod.head_dim ** -0.5 * idx_mod.n_heads ** -0.5)
    got = it.indexer_topk_ref(q, keys, w, idx_mod.topk, positions)
    assert torch.equal(got, want)


def test_reference_tie_rule() -> None:
    q = torch.ones(2, 1, 4)
    keys = torch.tensor([[1.0, 0, 0, 0], [2, 0, 0, 0], [1, 0, 0, 0], [2, 0, 0, 0], [-1, 0, 0, 0]])
    w = torch.ones(2, 1)
    got = it.indexer_topk_ref(q, keys, w, 5, torch.tensor([19, 7]))
    # scores 1, 2, 1, 2, 0 (relu): descending, ties to the lower index; query 2 sees only entries 0 and 1
    assert got.tolist() == [[1, 3, 0, 2, 4], [1, 0, -1, -1, -1]]


def integer_case(gen, S, H, d, n):
    q = torch.randint(-2, 3, (S, H, d), generator=gen).float()
    keys = torch.randint(-2, 3, (n, d), generator=gen).float()
    w = torch.randint(-2, 3, (S, H), generator=gen).float() * 0.25
    positions = torch.randint(0, 4 * n + 8, (S,), generator=gen)
    return q, keys, w, positions


@needs_triton
@interpreter
@pytest.mark.parametrize("S,H,d,n,causal", [(3, 2, 16, 37, True), (1, 5, 24, 70, False), (2, 20, 8, 5, True)])
def test_kernel_keys_and_topk_exact(S, H, d, n, causal, gen) -> None:
    q, keys, w, positions = integer_case(gen, S, H, d, n)
    out = poisoned((S, n), torch.int64)
    got = it.indexer_keys(q, keys, w, positions, causal=causal, out=out)
    want = it.order_keys(it.indexer_scores_ref(q, keys, w, positions, causal=causal))
    assert torch.equal(got, want)
    for k in (1, 4, n + 3):
        assert torch.equal(it.indexer_topk(q, keys, w, k, positions, causal=causal),
                           it.indexer_topk_ref(q, keys, w, k, positions, causal=causal))


def scores_of(keys: torch.Tensor) -> torch.Tensor:
    """Back from order keys to the float scores."""
    n = keys.shape[-1]
    bits = (keys + torch.arange(n)) // n
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int32)
    return bits.view(torch.float32)


@needs_triton
@interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_kernel_scores_close_on_random_inputs(dtype, gen) -> None:
    S, H, d, n = 3, 4, 32, 50
    q = torch.randn(S, H, d, generator=gen).to(dtype)
    keys = torch.randn(n, d, generator=gen).to(dtype)
    w = torch.randn(S, H, generator=gen)
    positions = torch.tensor([3, 100, 203])
    got = scores_of(it.indexer_keys(q, keys, w, positions))
    torch.testing.assert_close(got, it.indexer_scores_ref(q, keys, w, positions), rtol=1e-3, atol=1e-3)


@needs_triton
def test_launcher_refuses_bad_inputs(gen) -> None:
    q, keys, w, positions = integer_case(gen, 2, 2, 16, 8)
    with pytest.raises(ValueError, match="keys have 8 dims"):
        it.indexer_keys(q, keys[:, :8].contiguous(), w, positions)
    with pytest.raises(ValueError, match="weights"):
        it.indexer_keys(q, keys, w[:1].contiguous(), positions)
