"""V4 sparse attention: the reference against the model's own attention, the kernels against the reference."""

from __future__ import annotations

import pytest
import torch

from dsv4.runtime.deepseek_v4.attention import SparseAttention
from tests.runtime.v4.tiny import tiny_config

from .conftest import interpreter, needs_triton, poisoned
from dsv4.kernels import sparse_attention as sa


def model_attention(ratio: int, gen: torch.Generator) -> SparseAttention:
    cfg = tiny_config(layers=(ratio,), head_dim=32, heads=4)
    attn = SparseAttention(cfg, 0)
    with torch.no_grad():
        attn.attn_sink.copy_(torch.randn(4, generator=gen))
    return attn


def test_reference_of_a_split_pool_is_the_whole_pool(gen) -> None:
    q, kv, idx, sink = random_case(gen, 3, 4, 16, 30, 12, torch.float32)
    assert torch.equal(sa.sparse_attention_ref(q, kv[:11], idx, sink, 0.3, comp=kv[11:]),
                       sa.sparse_attention_ref(q, kv, idx, sink, 0.3))


@pytest.mark.parametrize("case", ["decode_window", "decode_hca", "decode_csa", "prefill_hca", "prefill_csa"])
def test_reference_is_the_model_attention(case: str, gen: torch.Generator) -> None:
    attn = model_attention(4 if "csa" in case else 128, gen)
    S = 1 if case.startswith("decode") else 5
    H, D, nw, m = 4, 32, 7, 6
    q = torch.randn(S, H, D, generator=gen)
    keys = torch.randn(nw, D, generator=gen)
    comp_all = torch.randn(m, D, generator=gen)
    win_mask = None if S == 1 else torch.rand(S, nw, generator=gen) > 0.3
    comp_idx = comp = comp_mask = None
    if case == "decode_window":
        comp_all = comp_all[:0]
    elif "hca" in case:
        comp = comp_all
        comp_mask = None if S == 1 else torch.rand(S, m, generator=gen) > 0.4
    else:
        comp_idx = torch.randint(-1, m, (S, 3), generator=gen)
        comp = comp_all[comp_idx.clamp(min=0)]  # (S, k, D), what the model gathers
        comp_mask = comp_idx >= 0 if S > 1 else None
        if S == 1:
            comp_idx = comp_idx.clamp(min=0)  # one query: every selected entry is visible
            comp = comp_all[comp_idx]
    want = attn.attend(q, keys, win_mask, comp, comp_mask)
    pool = torch.cat((keys, comp_all))
    idx = sa.candidates_of(nw, comp_idx, comp_all.shape[0], S, win_mask, comp_mask if "hca" in case else None)
    got = sa.sparse_attention_ref(q, pool, idx, attn.attn_sink.detach(), attn.scale)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def random_case(gen, S, H, D, M, N, dtype):
    q = torch.randn(S, H, D, generator=gen).to(dtype)
    kv = torch.randn(M, D, generator=gen).to(dtype)
    idx = torch.randint(-1, M, (S, N), generator=gen, dtype=torch.int32)
    idx[0, -1] = -1  # padding at the end
    if S > 1:
        idx[1] = -1  # a query with nothing but the sink
    sink = torch.randn(H, generator=gen)
    return q, kv, idx, sink


TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float16: dict(rtol=2e-3, atol=2e-3)}


@needs_triton
@interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("S,H,D,N,split", [(3, 4, 32, 20, 0), (2, 3, 24, 70, 13)])
def test_prefill_kernel_matches_reference(S, H, D, N, split, dtype, gen) -> None:
    q, kv, idx, sink = random_case(gen, S, H, D, 40, N, dtype)
    out = poisoned(q.shape, dtype)
    parts = dict(comp=kv[split:]) if split else {}
    got = sa.sparse_attention_prefill(q, kv[:split] if split else kv, idx, sink, D ** -0.5, out=out, **parts)
    assert got.data_ptr() == out.data_ptr()
    torch.testing.assert_close(got.float(), sa.sparse_attention_ref(q, kv, idx, sink, D ** -0.5).float(), **TOL[dtype])


@needs_triton
@interpreter
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("H,D,N,splits,split", [(4, 32, 150, None, 30), (5, 20, 9, 4, 0), (2, 32, 0, 2, 0)])
def test_decode_kernel_matches_reference(H, D, N, splits, split, dtype, gen) -> None:
    q, kv, idx, sink = random_case(gen, 1, H, D, 50, max(N, 1), dtype)
    idx = idx[:, :N].contiguous()
    out = poisoned(q.shape, dtype)
    parts = dict(comp=kv[split:]) if split else {}
    got = sa.sparse_attention_decode(q, kv[:split] if split else kv, idx, sink, D ** -0.5, out=out, splits=splits,
                                     **parts)
    torch.testing.assert_close(got.float(), sa.sparse_attention_ref(q, kv, idx, sink, D ** -0.5).float(), **TOL[dtype])


@needs_triton
def test_launcher_refuses_bad_inputs(gen) -> None:
    q, kv, idx, sink = random_case(gen, 2, 4, 32, 10, 8, torch.float32)
    with pytest.raises(ValueError, match="kv rows have 16 dims"):
        sa.sparse_attention_prefill(q, kv[:, :16].contiguous(), idx, sink, 1.0)
    with pytest.raises(ValueError, match="idx must be one of"):
        sa.sparse_attention_prefill(q, kv, idx.float(), sink, 1.0)
    with pytest.raises(ValueError, match="contiguous"):
        sa.sparse_attention_prefill(q.transpose(0, 1), kv, idx, sink, 1.0)
    with pytest.raises(ValueError, match="one query"):
        sa.sparse_attention_decode(q, kv, idx, sink, 1.0)
