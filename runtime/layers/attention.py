"""Causal self-attention over a preallocated per-layer KV cache (grouped-query heads)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .cpu_decode import CpuDecodeKernels, cpu_decode_kernels
from .split_attention import WarmRows, split_attention


@dataclass(slots=True)
class AttnContext:
    """Where the current chunk of tokens sits in the sequence; shared by all layers of one forward."""

    start: int  # position of the first new token == tokens already in the cache
    length: int  # new tokens
    device: torch.device | str = "cpu"
    _mask: torch.Tensor | None = None  # built on first use (only ATen's path for a chunk after the first needs it)

    @classmethod
    def make(cls, start: int, length: int, device: torch.device | str = "cpu") -> AttnContext:
        return cls(start, length, device)

    def causal_mask(self) -> torch.Tensor | None:
        """(T, start+T) bool for a chunk after the first (None otherwise: SDPA's is_causal covers it), built once per forward."""
        if self._mask is None and self.start > 0 and self.length > 1:
            q_pos = torch.arange(self.start, self.start + self.length, device=self.device).unsqueeze(1)  # (T, 1)
            self._mask = torch.arange(self.start + self.length, device=self.device).unsqueeze(0) <= q_pos  # (T, S)
        return self._mask


# The CPU flash kernel parallelises over (batch, head) only: with 3 kv heads on 2 threads one thread does
# twice the work. Past this length, and only when the kv heads do not divide evenly among the threads, a
# decode step splits the keys into two halves as a batch of 2 and merges the halves by their log-sum-exp
# (about 15% less attention time at 2048 tokens on 2 threads, a loss below 1024 and on 1 thread).
SPLIT_KV_MIN = 1024


def split_kv_pays(num_kv_heads: int, length: int) -> bool:
    threads = torch.get_num_threads()
    return length >= SPLIT_KV_MIN and threads > 1 and num_kv_heads % threads != 0


class Attention(nn.Module):
    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.group = num_heads // num_kv_heads
        # set by the engine's KVCache: (Hkv, capacity, D) views into its block (re-set when the block grows)
        self.k_cache = self.v_cache = torch.empty(0)
        self.warm: WarmRows | None = None  # set by KVCache while its live warm tier holds positions (kv_tiers.py)

    def decode_kernels(self, length: int) -> CpuDecodeKernels | None:
        """The CPU decode kernels when they apply to a chunk of `length` tokens: one token, a bf16 cache on the CPU
        (and warm rows, if any, read by the kernel: `reads_warm_rows`)."""
        if length != 1 or self.k_cache.dtype != torch.bfloat16 or self.k_cache.is_cuda:
            return None
        kernels = cpu_decode_kernels()
        if kernels is None or not kernels.supports(self.group, self.head_dim):
            return None
        return kernels if self.warm is None or kernels.reads_warm_rows else None

    def prefill_kernels(self) -> CpuDecodeKernels | None:
        """The CPU kernels for a chunk of several tokens when they apply: a bf16 cache on the CPU (cpu_prefill.c), and
        warm rows, if any, read by the kernel (`reads_warm_rows`)."""
        if self.k_cache.dtype != torch.bfloat16 or self.k_cache.is_cuda:
            return None
        kernels = cpu_decode_kernels()
        if kernels is None or not kernels.prefill_supports(self.head_dim):
            return None
        return kernels if self.warm is None or kernels.reads_warm_rows else None

    def forward_decode(self, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool, position: int,
                       kernels: CpuDecodeKernels) -> torch.Tensor:
        """One token's un-rotated qkv (1, (H + 2 Hkv) * D) -> (1, H*D): rotary, cache write and attention in two
        kernel calls (cos/sin: the rotary tables)."""
        slot = position if self.warm is None else position - self.warm.n  # the hot block's slot 0 is position warm.n
        kernels.rope_store(qkv, cos, sin, position, self.k_cache, self.v_cache, self.num_heads, interleaved, slot=slot)
        if self.warm is None:
            return kernels.attend(qkv, self.num_heads, self.k_cache, self.v_cache, position + 1)
        warm = self.warm  # its int8 rows as stored, beside the hot ones
        return kernels.attend_warm(qkv, self.num_heads, warm.int8_rows(0), warm.int8_rows(1), warm.n, self.k_cache, self.v_cache,
                                   position + 1 - warm.n)

    def forward_prefill(self, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool, start: int,
                        kernels: CpuDecodeKernels) -> torch.Tensor:
        """A chunk's un-rotated qkv (T, (H + 2 Hkv) * D) at positions start.. -> (T, H*D): rotary, cache writes and
        causal attention over the cache in two kernel calls."""
        slot = start if self.warm is None else start - self.warm.n
        kernels.rope_store(qkv, cos, sin, start, self.k_cache, self.v_cache, self.num_heads, interleaved, slot=slot)
        q = qkv.view(qkv.shape[0], -1, self.head_dim)[:, : self.num_heads]  # (T, H, D), rotated in place
        if self.warm is None:
            return kernels.prefill_attend(q, self.k_cache, self.v_cache, start)
        warm = self.warm
        return kernels.prefill_attend_warm(q, warm.int8_rows(0), warm.int8_rows(1), warm.n, self.k_cache, self.v_cache, start)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ctx: AttnContext) -> torch.Tensor:
        """q: (T, H, D), k/v: (T, Hkv, D) for the new tokens; returns (T, H*D)."""
        if self.warm is not None:  # the oldest positions are int8 in the live warm tier (where no C kernel reads them)
            return split_attention(self.warm, self.k_cache, self.v_cache, q, k, v, ctx.start, self.num_kv_heads)
        T, end = ctx.length, ctx.start + ctx.length
        self.k_cache[:, ctx.start : end] = k.transpose(0, 1)  # (Hkv, T, D)
        self.v_cache[:, ctx.start : end] = v.transpose(0, 1)
        keys, values = self.k_cache[:, :end], self.v_cache[:, :end]  # (Hkv, S, D)
        if T == 1:
            kernels = self.decode_kernels(1)
            if kernels is not None:
                return kernels.attend(q[0].contiguous(), self.num_heads, self.k_cache, self.v_cache, end)  # (1, H*D)
            # One query per head: group the heads that share a kv head as rows of one query block,
            # so no kv repeat and no mask (every cached position is visible).
            # 4-D inputs take the flash kernel on CPU; 3-D falls back to the unfused math path.
            qg = q.view(1, self.num_kv_heads, self.group, self.head_dim)  # (1, Hkv, G, D)
            if split_kv_pays(self.num_kv_heads, end) and not qg.is_cuda:  # a CPU kernel; CUDA's SDPA splits keys itself
                return self._split_kv(qg, end)
            out = F.scaled_dot_product_attention(qg, keys.unsqueeze(0), values.unsqueeze(0))  # (1, Hkv, G, D)
            return out.reshape(1, self.num_heads * self.head_dim)
        kernels = self.prefill_kernels()
        if kernels is not None:  # one C call: no (T, S) mask, no kv repeat, the chunk's own keys causal
            return kernels.prefill_attend(q, self.k_cache, self.v_cache, ctx.start)  # (T, H*D)
        qh = q.transpose(0, 1).unsqueeze(0)  # (1, H, T, D)
        keys, values = keys.unsqueeze(0), values.unsqueeze(0)  # (1, Hkv, S, D)
        mask = ctx.causal_mask()
        if mask is None:
            out = F.scaled_dot_product_attention(qh, keys, values, is_causal=True, enable_gqa=True)  # (1, H, T, D)
        else:
            out = F.scaled_dot_product_attention(qh, keys, values, attn_mask=mask, enable_gqa=True)
        return out[0].transpose(0, 1).reshape(T, self.num_heads * self.head_dim)

    def _split_kv(self, qg: torch.Tensor, end: int) -> torch.Tensor:
        half = (end + 1) // 2
        # halves [0, half) and [half, 2*half); for odd `end` the last slot is past the sequence and masked out
        keys = self.k_cache[:, : 2 * half].unflatten(1, (2, half)).transpose(0, 1)  # (2, Hkv, half, D)
        values = self.v_cache[:, : 2 * half].unflatten(1, (2, half)).transpose(0, 1)
        mask = None
        if end % 2:
            mask = torch.zeros(2, 1, 1, half, dtype=qg.dtype)
            mask[1, 0, 0, -1] = float("-inf")
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            qg.expand(2, -1, -1, -1), keys, values, attn_mask=mask
        )  # (2, Hkv, G, D), (2, Hkv, G)
        weights = torch.softmax(lse, dim=0).unsqueeze(-1).to(out.dtype)  # (2, Hkv, G, 1)
        return (out * weights).sum(0).reshape(1, self.num_heads * self.head_dim)
