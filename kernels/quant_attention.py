"""Decode attention that reads quantised KV rows directly (K = V, per-head sink): the warm/cold tiers are
attended without first materialising a dequantised copy, so a step reads 1 (fp8/int8) or 1/2 (int4) byte
per element instead of 4 (fp32) or 2 (bf16).

`sparse_quant_decode_attention` is the V4 decode over a candidate set in two stores: the sparse attention's
candidates (window rows, hot compressed rows) and every row of a quantised store (the warm rows the indexer
selected), in one softmax with the sink: both kernels write partials of one split array that one combine merges.

The same split-KV scheme as `sparse_attention_decode`: each program dequantises a run of rows tile by tile
into an online softmax, and the combine kernel merges the partials with the sink.
"""

from __future__ import annotations

import torch

from ._triton import check, check_tensor, next_pow2, tl, triton
from .kv_quant import FMT_CODE, QuantizedKV, check_quantized, dequant_tile, dequantize_kv_ref
from .sparse_attention import (_blocks, _check, _combine_kernel, _load_q, _split_kernel, softmax_step, sparse_attention_ref,
                               split_start, store_partial)

FLOATS = (torch.float32, torch.float16, torch.bfloat16)


def quant_decode_attention_ref(q: torch.Tensor, kv: QuantizedKV, sink: torch.Tensor, scale: float, *, out=None) -> torch.Tensor:
    """q (1, H, D) over every row of `kv` -> (1, H, D): the sparse attention of the dequantised rows."""
    rows = dequantize_kv_ref(kv, torch.float32)
    idx = torch.arange(rows.shape[0], device=q.device, dtype=torch.int32)[None, :]
    o = sparse_attention_ref(q.float(), rows, idx, sink, scale).to(q.dtype)
    return o if out is None else out.copy_(o)


@triton.jit
def _quant_split_kernel(q_ptr, codes_ptr, scale_ptr, zero_ptr, part_m, part_l, part_acc, H, D, N, per_split, sm_scale,
                        FMT: tl.constexpr, B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr,
                        BLOCK_D: tl.constexpr, PREC: tl.constexpr):
    h0 = tl.program_id(0) * BLOCK_H
    split = tl.program_id(1)
    q, _, qmask, offs_h = _load_q(q_ptr, 0, h0, H, D, BLOCK_H, BLOCK_D)
    q = q.to(tl.float32)
    offs_d = tl.arange(0, BLOCK_D)
    m, l, acc = split_start(BLOCK_H, BLOCK_D)
    lo = split * per_split
    hi = tl.minimum(lo + per_split, N)
    for n0 in range(lo, hi, BLOCK_N):
        rows = n0 + tl.arange(0, BLOCK_N)
        valid = rows < hi
        k = dequant_tile(codes_ptr, scale_ptr, zero_ptr, rows, offs_d, valid[:, None] & (offs_d[None, :] < D), D, FMT, B)
        m, l, acc = softmax_step(q, k, valid, m, l, acc, sm_scale, PREC)
    store_partial(part_m, part_l, part_acc, split, offs_h, qmask, H, D, m, l, acc, BLOCK_D)


def quant_decode_attention(q, kv: QuantizedKV, sink, scale: float, *, out=None, splits: int | None = None) -> torch.Tensor:
    check_tensor("q", q, dtypes=FLOATS, dim=3)
    check_tensor("sink", sink, dtypes=FLOATS, dim=1)
    _, H, D = q.shape
    check(q.shape[0] == 1, f"decode attention takes one query, not {q.shape[0]}")
    check(kv.dim == D, f"the KV rows have {kv.dim} dims, q has {D}")
    check(sink.shape == (H,), f"sink {tuple(sink.shape)} must be {(H,)}")
    check_quantized(kv, q.device)
    if out is None:
        out = torch.empty_like(q)
    check_tensor("out", out, dtypes=(q.dtype,), dim=3)
    check(out.shape == q.shape, f"out {tuple(out.shape)} must be {tuple(q.shape)}")
    N = kv.codes.shape[0]
    block_d = max(16, next_pow2(D))
    block_h = 16 if block_d >= 256 else max(16, min(64, next_pow2(H)))  # wide rows: tiles that fit registers
    block_n = 16 if block_d >= 256 else 64
    splits = next_pow2(splits or max(1, min(64, triton.cdiv(N, 4 * block_n))))
    per_split = triton.cdiv(triton.cdiv(max(N, 1), splits), block_n) * block_n
    part_m = torch.empty(splits, H, device=q.device, dtype=torch.float32)
    part_l = torch.empty_like(part_m)
    part_acc = torch.empty(splits, H, D, device=q.device, dtype=torch.float32)
    _quant_split_kernel[(triton.cdiv(H, block_h), splits)](
        q, kv.codes, kv.scale, kv.zero if kv.zero is not None else kv.scale, part_m, part_l, part_acc, H, D, N,
        per_split, float(scale), FMT=FMT_CODE[kv.fmt], B=kv.block, BLOCK_H=block_h, BLOCK_N=block_n,
        BLOCK_D=block_d, PREC="ieee", num_warps=8 if block_d >= 256 else 4)
    _combine_kernel[(H,)](part_m, part_l, part_acc, sink, out, H, D, SPLITS=splits, BLOCK_D=block_d)
    return out


def sparse_quant_decode_attention_ref(q, kv, idx, sink, scale: float, *, comp=None, warm: QuantizedKV,
                                      out=None) -> torch.Tensor:
    """q (1, H, D) over its candidates `idx` of the pool kv [+ comp] (as `sparse_attention_ref`) and every row of
    `warm`, one softmax with the sink -> (1, H, D)."""
    rows = dequantize_kv_ref(warm, torch.float32)
    pool = torch.cat([kv.float()] + ([comp.float()] if comp is not None else []) + [rows])
    first = pool.shape[0] - rows.shape[0]
    every = torch.arange(first, pool.shape[0], device=idx.device, dtype=idx.dtype)[None, :].expand(idx.shape[0], -1)
    o = sparse_attention_ref(q.float(), pool, torch.cat((idx, every), dim=1), sink, scale).to(q.dtype)
    return o if out is None else out.copy_(o)


def sparse_quant_decode_attention(q, kv, idx, sink, scale: float, *, comp=None, warm: QuantizedKV,
                                  out=None) -> torch.Tensor:
    out = _check(q, kv, comp, idx, sink, out)
    _, H, D = q.shape
    check(q.shape[0] == 1, f"decode attention takes one query, not {q.shape[0]}")
    check(warm.dim == D, f"the quantised rows have {warm.dim} dims, q has {D}")
    check_quantized(warm, q.device)
    block_h, block_d, prec = _blocks(q, D, H)
    block_n = 16 if block_d >= 256 else 64
    N, W = idx.shape[1], warm.codes.shape[0]
    n_sparse = next_pow2(max(1, min(32, triton.cdiv(N, 4 * block_n))))
    n_quant = next_pow2(max(1, min(32, triton.cdiv(W, 4 * block_n))))
    splits = next_pow2(n_sparse + n_quant)  # the combine's arange: a power of two; the rest stay empty
    part_m = torch.full((splits, H), float("-inf"), device=q.device, dtype=torch.float32)
    part_l = torch.zeros_like(part_m)
    part_acc = torch.zeros(splits, H, D, device=q.device, dtype=torch.float32)
    warps = 8 if block_d >= 256 else 4
    per = triton.cdiv(triton.cdiv(max(N, 1), n_sparse), block_n) * block_n
    _split_kernel[(triton.cdiv(H, block_h), n_sparse)](
        q, kv, kv if comp is None else comp, kv.shape[0], idx, part_m, part_l, part_acc, H, D, N, per, float(scale),
        BLOCK_H=block_h, BLOCK_N=block_n, BLOCK_D=block_d, PREC=prec, num_warps=warps)
    per = triton.cdiv(triton.cdiv(max(W, 1), n_quant), block_n) * block_n
    _quant_split_kernel[(triton.cdiv(H, block_h), n_quant)](
        q, warm.codes, warm.scale, warm.zero if warm.zero is not None else warm.scale, part_m[n_sparse:],
        part_l[n_sparse:], part_acc[n_sparse:], H, D, W, per, float(scale), FMT=FMT_CODE[warm.fmt], B=warm.block,
        BLOCK_H=block_h, BLOCK_N=block_n, BLOCK_D=block_d, PREC="ieee", num_warps=warps)
    _combine_kernel[(H,)](part_m, part_l, part_acc, sink, out, H, D, SPLITS=splits, BLOCK_D=block_d)
    return out
