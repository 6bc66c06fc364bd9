"""V4 sparse attention over each query's gathered candidate set.

The candidates of a query are rows of one pool `kv` (M, D): its window rows and the compressed rows it may
see (CSA: the indexer's top-k; HCA: every complete entry), listed per query in `idx` (S, N) with -1 as
padding. The pool may come in two parts, `kv` then `comp` (rows M.. of the pool), so the model's window
keys and compressed store are read where they are, never concatenated or gathered. K = V: a row is both
the key and the value. One softmax runs over the candidates' scores
q.k * scale and the head's sink logit (which has no value: it only takes probability mass):

    o[s, h] = sum_n softmax([q[s,h].kv[idx[s,n]] * scale]_n ++ [sink[h]])_n kv[idx[s,n]]

Prefill: one program per (query, block of heads) streams its candidates with an online softmax that starts
from the sink. Decode (one query, few programs otherwise): the candidates are split across programs, each
writes its partial max / sum / weighted values, and a second kernel merges them with the sink.
"""

from __future__ import annotations

import torch

from ._triton import check, check_tensor, next_pow2, tl, triton

FLOATS = (torch.float32, torch.float16, torch.bfloat16)
INDEX = (torch.int32, torch.int64)


def sparse_attention_ref(q: torch.Tensor, kv: torch.Tensor, idx: torch.Tensor, sink: torch.Tensor, scale: float,
                         *, comp: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """The semantics in torch (fp32): q (S, H, D), kv (M, D) [+ comp (M2, D)], idx (S, N) rows of the pool or -1,
    sink (H,)."""
    S, H, _ = q.shape
    pool = kv.float() if comp is None else torch.cat((kv.float(), comp.float()))
    rows = pool[idx.long().clamp(min=0)]  # (S, N, D)
    scores = torch.bmm(q.float(), rows.transpose(1, 2)) * scale  # (S, H, N)
    scores = scores.masked_fill((idx < 0)[:, None, :], float("-inf"))
    probs = torch.cat((scores, sink.float().view(1, H, 1).expand(S, H, 1)), dim=-1).softmax(-1)
    o = torch.bmm(probs[..., :-1], rows).to(q.dtype)
    return o if out is None else out.copy_(o)


sparse_attention_decode_ref = sparse_attention_prefill_ref = sparse_attention_ref


def candidates_of(n_window: int, comp_idx: torch.Tensor | None, n_comp_pool: int, S: int,
                  win_mask: torch.Tensor | None, comp_mask: torch.Tensor | None, device=None) -> torch.Tensor:
    """The idx of a pool `cat(window_keys (n_window, D), compressed (n_comp_pool, D))` for S queries: window rows
    where `win_mask` (S, n_window) allows (all when None), then the compressed rows `comp_idx` (S, k) (or every
    entry when None) where `comp_mask` allows; -1 elsewhere."""
    win = torch.arange(n_window, device=device).expand(S, n_window)
    if win_mask is not None:
        win = torch.where(win_mask, win, -1)
    parts = [win]
    if n_comp_pool or comp_idx is not None:
        comp = (torch.arange(n_comp_pool, device=device).expand(S, n_comp_pool) if comp_idx is None
                else comp_idx.clamp(min=0)) + n_window
        if comp_idx is not None:
            comp = torch.where(comp_idx >= 0, comp, -1)
        if comp_mask is not None:
            comp = torch.where(comp_mask, comp, -1)
        parts.append(comp)
    return torch.cat(parts, dim=1).to(torch.int32).contiguous()


@triton.jit
def _chunk(q, kv_ptr, comp_ptr, M, idx_row, n0, N, m, l, acc, scale, D, BLOCK_N: tl.constexpr,
           BLOCK_D: tl.constexpr, PREC: tl.constexpr):
    """One block of candidates into the running (max m, sum l, values acc) of a block of heads. Rows below M
    are in kv, the others in comp."""
    offs_n = n0 + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    rows = tl.load(idx_row + offs_n, mask=offs_n < N, other=-1).to(tl.int64)
    valid = rows >= 0
    dmask = offs_d[None, :] < D
    in_kv = rows < M
    k = tl.load(kv_ptr + rows[:, None] * D + offs_d[None, :], mask=(valid & in_kv)[:, None] & dmask, other=0.0)
    k += tl.load(comp_ptr + (rows - M)[:, None] * D + offs_d[None, :], mask=(valid & ~in_kv)[:, None] & dmask,
                 other=0.0)  # (BLOCK_N, BLOCK_D)
    return softmax_step(q, k, valid, m, l, acc, scale, PREC)


@triton.jit
def softmax_step(q, k, valid, m, l, acc, scale, PREC: tl.constexpr):
    """Rows k (BLOCK_N, D) (`valid` ones only) into the online softmax of a block of heads q (BLOCK_H, D); also
    the quantised-KV attention's step."""
    s = tl.dot(q, tl.trans(k), input_precision=PREC) * scale  # (BLOCK_H, BLOCK_N)
    s = tl.where(valid[None, :], s, float("-inf"))
    m_new = tl.maximum(m, tl.max(s, axis=1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a block with nothing visible yet: no NaN
    alpha = tl.exp(m - m_safe)
    p = tl.exp(s - m_safe[:, None])
    l = l * alpha + tl.sum(p, axis=1)
    acc = acc * alpha[:, None] + tl.dot(p.to(k.dtype), k, input_precision=PREC)
    return m_new, l, acc


@triton.jit
def _load_q(q_ptr, s, h0, H, D, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr):
    offs_h = h0 + tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_h[:, None] < H) & (offs_d[None, :] < D)
    ptrs = q_ptr + (s * H + offs_h[:, None]).to(tl.int64) * D + offs_d[None, :]
    return tl.load(ptrs, mask=mask, other=0.0), ptrs, mask, offs_h


@triton.jit
def _prefill_kernel(q_ptr, kv_ptr, comp_ptr, M, idx_ptr, sink_ptr, o_ptr, H, D, N, scale, BLOCK_H: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PREC: tl.constexpr):
    s = tl.program_id(0)
    h0 = tl.program_id(1) * BLOCK_H
    q, _, mask, offs_h = _load_q(q_ptr, s, h0, H, D, BLOCK_H, BLOCK_D)
    m = tl.load(sink_ptr + offs_h, mask=offs_h < H, other=0.0).to(tl.float32)  # the sink: exp(sink - m) = 1
    l = tl.full((BLOCK_H,), 1.0, tl.float32)
    acc = tl.zeros((BLOCK_H, BLOCK_D), tl.float32)
    idx_row = idx_ptr + s.to(tl.int64) * N
    for n0 in range(0, N, BLOCK_N):
        m, l, acc = _chunk(q, kv_ptr, comp_ptr, M, idx_row, n0, N, m, l, acc, scale, D, BLOCK_N, BLOCK_D, PREC)
    o = acc / l[:, None]
    tl.store(o_ptr + (s * H + offs_h[:, None]).to(tl.int64) * D + tl.arange(0, BLOCK_D)[None, :],
             o.to(o_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _split_kernel(q_ptr, kv_ptr, comp_ptr, M, idx_ptr, part_m, part_l, part_acc, H, D, N, per_split, scale,
                  BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PREC: tl.constexpr):
    h0 = tl.program_id(0) * BLOCK_H
    split = tl.program_id(1)
    q, _, mask, offs_h = _load_q(q_ptr, 0, h0, H, D, BLOCK_H, BLOCK_D)
    m, l, acc = split_start(BLOCK_H, BLOCK_D)
    lo = split * per_split
    hi = tl.minimum(lo + per_split, N)
    for n0 in range(lo, hi, BLOCK_N):
        m, l, acc = _chunk(q, kv_ptr, comp_ptr, M, idx_ptr, n0, hi, m, l, acc, scale, D, BLOCK_N, BLOCK_D, PREC)
    store_partial(part_m, part_l, part_acc, split, offs_h, mask, H, D, m, l, acc, BLOCK_D)


@triton.jit
def split_start(BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr):
    """An empty running softmax: max -inf, sum 0, values 0 (a split may see no candidate at all)."""
    return (tl.full((BLOCK_H,), float("-inf"), tl.float32), tl.zeros((BLOCK_H,), tl.float32),
            tl.zeros((BLOCK_H, BLOCK_D), tl.float32))


@triton.jit
def store_partial(part_m, part_l, part_acc, split, offs_h, mask, H, D, m, l, acc, BLOCK_D: tl.constexpr):
    """One split's running softmax, for `_combine_kernel`."""
    row = split * H + offs_h
    tl.store(part_m + row, m, mask=offs_h < H)
    tl.store(part_l + row, l, mask=offs_h < H)
    tl.store(part_acc + row[:, None].to(tl.int64) * D + tl.arange(0, BLOCK_D)[None, :], acc, mask=mask)


@triton.jit
def _combine_kernel(part_m, part_l, part_acc, sink_ptr, o_ptr, H, D, SPLITS: tl.constexpr, BLOCK_D: tl.constexpr):
    h = tl.program_id(0)
    offs_s = tl.arange(0, SPLITS)
    offs_d = tl.arange(0, BLOCK_D)
    m = tl.load(part_m + offs_s * H + h)
    l = tl.load(part_l + offs_s * H + h)
    acc = tl.load(part_acc + (offs_s * H + h)[:, None].to(tl.int64) * D + offs_d[None, :], mask=offs_d[None, :] < D)
    sink = tl.load(sink_ptr + h).to(tl.float32)
    top = tl.maximum(tl.max(m, axis=0), sink)
    w = tl.exp(m - top)  # splits that saw nothing have m = -inf: weight 0
    total = tl.exp(sink - top) + tl.sum(l * w, axis=0)
    o = tl.sum(acc * w[:, None], axis=0) / total
    tl.store(o_ptr + h * D + offs_d, o.to(o_ptr.dtype.element_ty), mask=offs_d < D)


def _check(q, kv, comp, idx, sink, out) -> torch.Tensor:
    check_tensor("q", q, dtypes=FLOATS, dim=3)
    check_tensor("kv", kv, dtypes=(q.dtype,), dim=2)
    if comp is not None:
        check_tensor("comp", comp, dtypes=(q.dtype,), dim=2)
        check(comp.shape[1] == kv.shape[1] and comp.device == kv.device, "comp rows must be kv's width, on its device")
    check_tensor("idx", idx, dtypes=INDEX, dim=2)
    check_tensor("sink", sink, dtypes=FLOATS + (torch.float32,), dim=1)
    S, H, D = q.shape
    check(kv.shape[1] == D, f"kv rows have {kv.shape[1]} dims, q has {D}")
    check(idx.shape[0] == S and sink.shape[0] == H, f"idx {tuple(idx.shape)} / sink {tuple(sink.shape)} do not fit q {tuple(q.shape)}")
    check(q.device == kv.device == idx.device == sink.device, "q, kv, idx and sink must be on one device")
    if out is None:
        return torch.empty_like(q)
    check_tensor("out", out, dtypes=(q.dtype,), dim=3)
    check(out.shape == q.shape, f"out {tuple(out.shape)} must be {tuple(q.shape)}")
    return out


def _blocks(q: torch.Tensor, D: int, H: int) -> tuple[int, int, str]:
    # tl.dot wants every dim >= 16; wide rows (V4: 512) keep the head block small so the tiles fit registers
    block_h = 16 if D >= 256 else max(16, min(64, next_pow2(H)))
    return block_h, max(16, next_pow2(D)), "ieee" if q.dtype == torch.float32 else "tf32"


def sparse_attention_prefill(q, kv, idx, sink, scale: float, *, comp=None, out=None) -> torch.Tensor:
    out = _check(q, kv, comp, idx, sink, out)
    S, H, D = q.shape
    block_h, block_d, prec = _blocks(q, D, H)
    block_n = 16 if block_d >= 256 else 64
    _prefill_kernel[(S, triton.cdiv(H, block_h))](q, kv, kv if comp is None else comp, kv.shape[0], idx, sink, out, H, D, idx.shape[1], float(scale),
                                                  BLOCK_H=block_h, BLOCK_N=block_n, BLOCK_D=block_d, PREC=prec,
                                                  num_warps=8 if block_d >= 256 else 4)
    return out


def sparse_attention_decode(q, kv, idx, sink, scale: float, *, comp=None, out=None,
                            splits: int | None = None) -> torch.Tensor:
    out = _check(q, kv, comp, idx, sink, out)
    S, H, D = q.shape
    check(S == 1, f"the decode kernel takes one query, not {S}")
    block_h, block_d, prec = _blocks(q, D, H)
    block_n = 16 if block_d >= 256 else 64
    N = idx.shape[1]
    splits = splits or max(1, min(32, triton.cdiv(N, 4 * block_n)))
    splits = next_pow2(splits)
    per_split = triton.cdiv(triton.cdiv(max(N, 1), splits), block_n) * block_n
    part_m = torch.empty(splits, H, device=q.device, dtype=torch.float32)
    part_l = torch.empty_like(part_m)
    part_acc = torch.empty(splits, H, D, device=q.device, dtype=torch.float32)
    _split_kernel[(triton.cdiv(H, block_h), splits)](q, kv, kv if comp is None else comp, kv.shape[0], idx, part_m, part_l, part_acc, H, D, N, per_split,
                                                     float(scale), BLOCK_H=block_h, BLOCK_N=block_n,
                                                     BLOCK_D=block_d, PREC=prec, num_warps=8 if block_d >= 256 else 4)
    _combine_kernel[(H,)](part_m, part_l, part_acc, sink, out, H, D, SPLITS=splits, BLOCK_D=block_d)
    return out
