"""Decode attention that reads quantised KV rows directly (K = V, per-head sink): the warm/cold tiers are
attended without first materialising a dequantised copy, so a step reads 1 (fp8/int8) or 1/2 (int4) byte
per element instead of 4 (fp32) or 2 (bf16).

The same split-KV scheme as `sparse_attention_decode`: each program dequantises a run of rows tile by tile
into an online softmax, and the combine kernel merges the partials with the sink.
"""

from __future__ import annotations

import torch

from ._triton import check, check_tensor, next_pow2, tl, triton
from .kv_quant import FMT_CODE, QuantizedKV, check_quantized, dequant_tile, dequantize_kv_ref
from .sparse_attention import _combine_kernel, _load_q, softmax_step, sparse_attention_ref, split_start, store_partial

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
