"""The V4 compressor's pooling: each complete window of `ratio` rows becomes one entry, a per-channel softmax
over the window's slots of the gate scores (plus the learned slot bias `ape`) weighting the projected KV.

    ratio 128 (HCA):  entry[w, ch] = sum_i softmax_i(score[w*m+i, ch] + ape[i, ch]) kv[w*m+i, ch]
    ratio 4 (CSA):    rows are 2c wide; entry w pools 2m slots: the first halves (channels :c) of window w-1
                      and the second halves (channels c:) of window w. Window -1 is `prev_*` (the state a
                      previous chunk left; its scores already carry the bias) or absent (no weight).

The norm and RoPE that follow are the model's. `ape` None: the scores already carry the slot bias (the model
adds it as rows arrive, since a window can fill over several decode steps).
"""

from __future__ import annotations

import torch

from ._triton import check, check_tensor, next_pow2, tl, triton

FLOATS = (torch.float32, torch.float16, torch.bfloat16)


def compressor_pool_ref(kv: torch.Tensor, score: torch.Tensor, ape: torch.Tensor | None, prev_kv: torch.Tensor | None,
                        prev_score: torch.Tensor | None, ratio: int, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """kv, score (n*ratio, coff*c) -> (n, c) in kv's dtype (computed in fp32, as the model does)."""
    m = ratio
    n = kv.shape[0] // m
    kv, score = kv.float().view(n, m, -1), score.float().view(n, m, -1)
    if ape is not None:
        score = score + ape.float()
    if ratio == 4:
        c = kv.shape[-1] // 2
        prev_k = kv.new_zeros(n, m, c)
        prev_s = score.new_full((n, m, c), float("-inf"))
        if n > 1:
            prev_k[1:], prev_s[1:] = kv[:-1, :, :c], score[:-1, :, :c]
        if prev_kv is not None:
            prev_k[0], prev_s[0] = prev_kv.float(), prev_score.float()
        kv = torch.cat((prev_k, kv[:, :, c:]), dim=1)
        score = torch.cat((prev_s, score[:, :, c:]), dim=1)
    pooled = (kv * score.softmax(dim=1)).sum(dim=1)
    return pooled if out is None else out.copy_(pooled)


@triton.jit
def _pool_kernel(kv_ptr, sc_ptr, ape_ptr, pk_ptr, ps_ptr, out_ptr, C, M: tl.constexpr, OVERLAP: tl.constexpr,
                 HAS_APE: tl.constexpr, HAS_PREV: tl.constexpr, BLOCK_C: tl.constexpr):
    w = tl.program_id(0)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    offs_m = tl.arange(0, M)
    cmask = (offs_m[:, None] >= 0) & (offs_c < C)[None, :]  # (M, BLOCK_C)
    later = offs_m[:, None] * 0 + w > 0  # as a tile: a window with a previous one in this chunk
    width = 2 * C if OVERLAP else C
    second = C if OVERLAP else 0  # the channels of this window's own half
    rows = (w * M + offs_m).to(tl.int64)[:, None] * width
    kv_b = tl.load(kv_ptr + rows + second + offs_c[None, :], mask=cmask, other=0.0).to(tl.float32)
    sc_b = tl.load(sc_ptr + rows + second + offs_c[None, :], mask=cmask, other=0.0).to(tl.float32)
    if HAS_APE:
        sc_b += tl.load(ape_ptr + offs_m[:, None] * width + second + offs_c[None, :], mask=cmask, other=0.0)
    top = tl.max(sc_b, axis=0)
    if OVERLAP:
        prev_rows = rows - M * width
        have = cmask & later
        kv_a = tl.load(kv_ptr + prev_rows + offs_c[None, :], mask=have, other=0.0).to(tl.float32)
        sc_a = tl.load(sc_ptr + prev_rows + offs_c[None, :], mask=have, other=0.0).to(tl.float32)
        if HAS_APE:
            sc_a += tl.load(ape_ptr + offs_m[:, None] * width + offs_c[None, :], mask=cmask, other=0.0)
        if HAS_PREV:
            first = cmask & ~later
            kv_p = tl.load(pk_ptr + offs_m[:, None] * C + offs_c[None, :], mask=first, other=0.0).to(tl.float32)
            sc_p = tl.load(ps_ptr + offs_m[:, None] * C + offs_c[None, :], mask=first, other=0.0).to(tl.float32)
            kv_a = tl.where(later, kv_a, kv_p)
            sc_a = tl.where(later, sc_a, sc_p)
        else:
            sc_a = tl.where(later, sc_a, float("-inf"))
        top = tl.maximum(top, tl.max(sc_a, axis=0))
    e_b = tl.exp(sc_b - top[None, :])
    total = tl.sum(e_b, axis=0)
    acc = tl.sum(e_b * kv_b, axis=0)
    if OVERLAP:
        e_a = tl.exp(sc_a - top[None, :])
        total += tl.sum(e_a, axis=0)
        acc += tl.sum(e_a * kv_a, axis=0)
    tl.store(out_ptr + w.to(tl.int64) * C + offs_c, (acc / total).to(out_ptr.dtype.element_ty), mask=offs_c < C)


def compressor_pool(kv, score, ape, prev_kv, prev_score, ratio: int, *, out=None) -> torch.Tensor:
    check(ratio >= 1 and ratio & (ratio - 1) == 0, f"ratio must be a power of two, not {ratio}")
    check_tensor("kv", kv, dtypes=FLOATS, dim=2)
    check_tensor("score", score, dtypes=FLOATS, dim=2)
    check(kv.shape == score.shape and kv.shape[0] % ratio == 0,
          f"kv {tuple(kv.shape)} and score {tuple(score.shape)} must be the same whole windows of {ratio} rows")
    overlap = ratio == 4
    check(not overlap or kv.shape[1] % 2 == 0, "overlapping (ratio 4) rows hold two halves")
    C = kv.shape[1] // 2 if overlap else kv.shape[1]
    if ape is not None:
        check_tensor("ape", ape, dtypes=(torch.float32,), dim=2)
        check(ape.shape == (ratio, kv.shape[1]), f"ape {tuple(ape.shape)} must be {(ratio, kv.shape[1])}")
    check((prev_kv is None) == (prev_score is None), "prev_kv and prev_score come together")
    if prev_kv is not None:
        check(overlap, "only overlapping windows (ratio 4) carry a previous half")
        for name, t in (("prev_kv", prev_kv), ("prev_score", prev_score)):
            check_tensor(name, t, dtypes=FLOATS, dim=2)
            check(t.shape == (ratio, C), f"{name} {tuple(t.shape)} must be {(ratio, C)}")
    n = kv.shape[0] // ratio
    if out is None:
        out = torch.empty(n, C, dtype=kv.dtype, device=kv.device)
    check_tensor("out", out, dtypes=FLOATS, dim=2)
    check(out.shape == (n, C), f"out {tuple(out.shape)} must be {(n, C)}")
    block_c = min(64 if ratio >= 64 else 128, next_pow2(C))
    if n:
        _pool_kernel[(n, triton.cdiv(C, block_c))](
            kv, score, ape if ape is not None else kv, prev_kv if prev_kv is not None else kv,
            prev_score if prev_score is not None else kv, out, C, M=ratio, OVERLAP=overlap,
            HAS_APE=ape is not None, HAS_PREV=prev_kv is not None, BLOCK_C=block_c)
    return out
