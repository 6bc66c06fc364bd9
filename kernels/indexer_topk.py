"""The lightning indexer's scores and top-k.

    score[s, j] = sum_h w[s, h] * relu(q[s, h] . keys[j])        (w already carries the 1/sqrt(d * heads) scale)

Causal: query s at position p sees the compressed entries j < (p + 1) // ratio (an entry is stored once its
window is complete). The k best visible entries, score descending and then the lower index first; -1 where
fewer than k are visible.

The kernel writes, instead of the float scores, one distinct int64 key per entry: the score's float bits
mapped to an order-preserving integer, times n, minus j. One `topk` over distinct keys is then exact and
deterministic (what `stable_topk` of the model does in torch), with no sort.
"""

from __future__ import annotations

import torch

from ._triton import check, check_tensor, next_pow2, tl, triton

FLOATS = (torch.float32, torch.float16, torch.bfloat16)


def order_keys(scores: torch.Tensor) -> torch.Tensor:
    """(..., n) float scores -> distinct int64 keys in the same order, ties to the lower index (see `stable_topk`)."""
    n = scores.shape[-1]
    bits = (scores.float() + 0.0).view(torch.int32).long()  # + 0.0: -0.0 ties with +0.0
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return bits * n - torch.arange(n, device=scores.device)


def _select(keys: torch.Tensor, k: int, positions: torch.Tensor, ratio: int, causal: bool) -> torch.Tensor:
    S, n = keys.shape
    k = min(k, n)
    if k == 0:
        return torch.full((S, 0), -1, dtype=torch.long, device=keys.device)
    idx = keys.topk(k, dim=-1).indices
    if not causal:
        return idx
    visible = idx < ((positions.to(idx.device) + 1) // ratio)[:, None]
    return torch.where(visible, idx, torch.full_like(idx, -1))


def indexer_scores_ref(q: torch.Tensor, keys: torch.Tensor, weights: torch.Tensor, positions: torch.Tensor, *,
                       ratio: int = 4, causal: bool = True) -> torch.Tensor:
    """q (S, H, d), keys (n, d), weights (S, H) -> (S, n) float32 scores, -inf where not visible."""
    score = torch.bmm(weights.float()[:, None, :], (q.float() @ keys.float().T).relu())[:, 0]
    if causal:
        visible = torch.arange(keys.shape[0], device=q.device)[None, :] < ((positions.to(q.device) + 1) // ratio)[:, None]
        score = score.masked_fill(~visible, float("-inf"))
    return score


def indexer_topk_ref(q, keys, weights, k: int, positions, *, ratio: int = 4, causal: bool = True) -> torch.Tensor:
    """-> (S, min(k, n)) int64 entry indices, best first, -1 where fewer are visible."""
    keys_ = order_keys(indexer_scores_ref(q, keys, weights, positions, ratio=ratio, causal=causal))
    return _select(keys_, k, positions, ratio, causal)


@triton.jit
def _keys_kernel(q_ptr, k_ptr, w_ptr, pos_ptr, out_ptr, H, DI, N, RATIO, CAUSAL: tl.constexpr,
                 BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PREC: tl.constexpr):
    s = tl.program_id(0)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    score = tl.zeros((BLOCK_N,), tl.float32)
    for h0 in range(0, H, BLOCK_H):
        hs = h0 + offs_h
        acc = tl.zeros((BLOCK_H, BLOCK_N), tl.float32)
        for d0 in range(0, DI, BLOCK_D):
            ds = d0 + offs_d
            q = tl.load(q_ptr + (s * H + hs[:, None]).to(tl.int64) * DI + ds[None, :],
                        mask=(hs[:, None] < H) & (ds[None, :] < DI), other=0.0)
            kt = tl.load(k_ptr + offs_n[None, :].to(tl.int64) * DI + ds[:, None],
                         mask=(offs_n[None, :] < N) & (ds[:, None] < DI), other=0.0)
            acc += tl.dot(q, kt, input_precision=PREC)
        w = tl.load(w_ptr + s * H + hs, mask=hs < H, other=0.0).to(tl.float32)
        score += tl.sum(tl.maximum(acc, 0.0) * w[:, None], axis=0)
    if CAUSAL:
        limit = (tl.load(pos_ptr + s) + 1) // RATIO
        score = tl.where(offs_n < limit, score, float("-inf"))
    score = tl.where(score == 0.0, 0.0, score)  # -0.0 ties with +0.0
    bits = score.to(tl.int32, bitcast=True)
    bits = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(tl.int64)
    tl.store(out_ptr + s.to(tl.int64) * N + offs_n, bits * N - offs_n, mask=offs_n < N)


def indexer_keys(q, keys, weights, positions, *, ratio: int = 4, causal: bool = True,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """The kernel: (S, n) int64 order keys of the masked scores (equal to `order_keys(indexer_scores_ref(...))`
    up to the rounding of the sums)."""
    check_tensor("q", q, dtypes=FLOATS, dim=3)
    check_tensor("keys", keys, dtypes=(q.dtype,), dim=2)
    check_tensor("weights", weights, dtypes=FLOATS, dim=2)
    check_tensor("positions", positions, dtypes=(torch.int32, torch.int64), dim=1)
    S, H, DI = q.shape
    N = keys.shape[0]
    check(keys.shape[1] == DI, f"keys have {keys.shape[1]} dims, q has {DI}")
    check(weights.shape == (S, H) and positions.shape == (S,), f"weights {tuple(weights.shape)} / positions "
          f"{tuple(positions.shape)} do not fit q {tuple(q.shape)}")
    check(q.device == keys.device == weights.device == positions.device, "all inputs on one device")
    if out is None:
        out = torch.empty(S, N, dtype=torch.int64, device=q.device)
    check_tensor("out", out, dtypes=(torch.int64,), dim=2)
    check(out.shape == (S, N), f"out {tuple(out.shape)} must be {(S, N)}")
    block_h = max(16, min(32, next_pow2(H)))
    block_d = max(16, min(128, next_pow2(DI)))
    block_n = 64
    if N:
        _keys_kernel[(S, triton.cdiv(N, block_n))](q, keys, weights, positions, out, H, DI, N, ratio, CAUSAL=causal,
                                                   BLOCK_H=block_h, BLOCK_N=block_n, BLOCK_D=block_d,
                                                   PREC="ieee" if q.dtype == torch.float32 else "tf32")
    return out


def indexer_topk(q, keys, weights, k: int, positions, *, ratio: int = 4, causal: bool = True) -> torch.Tensor:
    return _select(indexer_keys(q, keys, weights, positions, ratio=ratio, causal=causal), k, positions, ratio, causal)
