"""Attention over a layer's warm (int8) and hot K/V without a dequantised copy of the warm part: the warm
positions are dequantised `WARM_CHUNK` at a time into a scratch, each part is attended by ATen's CPU flash
kernel (which returns its log-sum-exp), and the parts are merged by their log-sum-exp:
softmax over all keys = sum_i exp(lse_i - lse) * out_i.

This is the path where the C kernels do not run (`Attention.decode_kernels`/`prefill_kernels`: no AVX-512
BF16, an fp32 cache, `DSV4_CPU_WARM_ATTENTION=0`); they read the int8 rows as stored in the same pass as the
hot ones (`cpu_decode.c`, `cpu_prefill.c`).

Runs only when the llama live warm tier holds positions (`Attention.warm`, runtime/engine/kv_tiers.py);
the block (`k_cache`/`v_cache`) then holds positions [warm.n, ...). Every warm position is before every
query (the warm tier only takes computed positions), so only the hot part needs the causal mask.
"""

from __future__ import annotations

from typing import Protocol

import torch

WARM_CHUNK = 1024  # warm positions dequantised at a time: 1024 x Hkv x D, a few hundred KB of scratch


class WarmRows(Protocol):
    n: int

    def keys(self, start: int, end: int, dtype: torch.dtype) -> torch.Tensor: ...

    def values(self, start: int, end: int, dtype: torch.dtype) -> torch.Tensor: ...

    def int8_rows(self, which: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K (which=0) or V (1) as stored, for the C kernel: codes (Hkv, capacity, D) int8, scales (Hkv, capacity, 1)
        fp16; positions [0, n) valid."""
        ...


def flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """q (1, Hkv, R, D), k/v (Hkv, S, D) -> out (1, Hkv, R, D), lse (1, Hkv, R) float32."""
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k.unsqueeze(0), v.unsqueeze(0), attn_mask=mask)


def split_attention(warm: WarmRows, k_cache: torch.Tensor, v_cache: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                    v: torch.Tensor, start: int, num_kv_heads: int) -> torch.Tensor:
    """q: (T, H, D), k/v: (T, Hkv, D) of positions [start, start + T); writes k/v into the hot block (whose slot
    0 is position warm.n) and returns attention over every position up to each query's, (T, H*D)."""
    T, H, D = q.shape
    offset, end = warm.n, start + T
    k_cache[:, start - offset : end - offset] = k.transpose(0, 1)
    v_cache[:, start - offset : end - offset] = v.transpose(0, 1)
    group = H // num_kv_heads
    # rows (g, t) of one query block per kv head: no kv repeat
    qg = q.view(T, num_kv_heads, group, D).permute(1, 2, 0, 3).reshape(1, num_kv_heads, group * T, D)
    mask = None
    if T > 1:  # query t (position start + t) sees hot slot j (position offset + j) when offset + j <= start + t
        hot_pos = torch.arange(offset, end).unsqueeze(0)
        visible = hot_pos <= torch.arange(start, end).unsqueeze(1)  # (T, S_hot)
        mask = torch.zeros(T, end - offset, dtype=q.dtype).masked_fill_(~visible, float("-inf")).repeat(group, 1)
    outs, lses = [], []
    out, lse = flash(qg, k_cache[:, : end - offset], v_cache[:, : end - offset], mask)
    outs.append(out)
    lses.append(lse)
    for chunk in range(0, offset, WARM_CHUNK):
        stop = min(chunk + WARM_CHUNK, offset)
        out, lse = flash(qg, warm.keys(chunk, stop, q.dtype), warm.values(chunk, stop, q.dtype), None)
        outs.append(out)
        lses.append(lse)
    weights = torch.softmax(torch.stack(lses), dim=0).unsqueeze(-1)  # (P, 1, Hkv, R, 1) float32
    merged = (torch.stack(outs).float() * weights).sum(0).to(q.dtype)  # (1, Hkv, G*T, D)
    return merged.view(num_kv_heads, group, T, D).permute(2, 0, 1, 3).reshape(T, H * D)
