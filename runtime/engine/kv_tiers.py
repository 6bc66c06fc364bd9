"""The warm tier of a live llama cache: positions [0, n) of every layer's K and V in int8 (one fp16 scale per
head vector), host RAM; the hot block (`KVCache.block`) then holds positions [n, n + capacity).

It exists only when the engine is given a hot byte budget (`LlamaEngine(hot_kv_bytes=...)`, config
`kv_live_hot_mb`). Before each write `KVCache.reserve` calls `make_room`: once the hot positions would pass
the budget, the oldest computed ones move to warm, `DEMOTE_STEP` at a time (the hot block is shifted once per
step, not per token). Attention over warm + hot rows is the C kernels (runtime/layers/cpu_decode.c, reading the
codes and scales in place through `WarmLayer.int8_rows`; a row past n is never read), else
`runtime/layers/split_attention.py`. Without a budget, or while nothing is warm, no line here runs in a forward
pass: every step is what it was.

Every warm buffer is allocated zeroed and zeroed again past n when the tier shrinks (a truncation, a reset),
so no read ever meets uninitialised or stale memory.
"""

from __future__ import annotations

import torch

from ..kv.codec import quantise_int8

DEMOTE_STEP = 256  # positions moved to warm at a time
MIN_HOT = 64  # positions always kept hot (the recent ones: every query attends to them)


class WarmKV:
    """Int8 K/V of positions [0, n) for all layers: codes (L, 2, Hkv, capacity, D), scales (L, 2, Hkv, capacity, 1)."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, hot_positions: int) -> None:
        self.shape = (layers, 2, kv_heads)
        self.head_dim = head_dim
        self.hot_positions = max(MIN_HOT, hot_positions)  # the budget, in positions of the hot block
        self.n = 0
        self.codes, self.scales = self._allocate(0)

    @classmethod
    def for_budget(cls, block: torch.Tensor, hot_bytes: int) -> WarmKV:
        layers, _, kv_heads, _, head_dim = block.shape
        per_position = layers * 2 * kv_heads * head_dim * block.element_size()
        return cls(layers, kv_heads, head_dim, hot_bytes // per_position)

    def demote_count(self, hot_after_write: int, computed_hot: int) -> int:
        """How many of the oldest computed hot positions to demote so that a write leaving `hot_after_write`
        positions in the hot block stays within the budget (whole steps; never the last MIN_HOT)."""
        over = hot_after_write - self.hot_positions
        if over <= 0:
            return 0
        k = -(-over // DEMOTE_STEP) * DEMOTE_STEP
        return max(0, min(k, computed_hot - MIN_HOT))

    def append(self, kv: torch.Tensor) -> None:
        """Quantise hot K/V (L, 2, Hkv, k, D) and store it as positions [n, n + k)."""
        k = kv.shape[3]
        if self.n + k > self.codes.shape[3]:
            self._grow(max(2 * self.codes.shape[3], self.n + k, DEMOTE_STEP))
        parts = quantise_int8(kv, self.head_dim)  # one block per head vector
        self.codes[:, :, :, self.n : self.n + k] = parts[""].view(*self.shape, k, self.head_dim)
        self.scales[:, :, :, self.n : self.n + k] = parts[".scale"].view(*self.shape, k, 1)
        self.n += k

    def truncate(self, n: int) -> None:
        """Keep positions [0, n); what was past them is zeroed, not only forgotten."""
        if n < self.n:
            self.codes[:, :, :, n : self.n].zero_()
            self.scales[:, :, :, n : self.n].zero_()
            self.n = n

    def dequantise(self, layer: int, which: int, start: int, end: int, dtype: torch.dtype) -> torch.Tensor:
        """Positions [start, end) of one layer's K (which=0) or V (1): (Hkv, end - start, D) in `dtype`. The
        codes are exact in bf16; one multiply by the per-vector scale, in place (as codec's warm writer)."""
        out = self.codes[layer, which, :, start:end].to(dtype)
        return out.mul_(self.scales[layer, which, :, start:end].to(dtype))

    def all(self, dtype: torch.dtype) -> torch.Tensor:
        """Every warm position dequantised (L, 2, Hkv, n, D): for an export, never for attention."""
        return (self.codes[:, :, :, : self.n].to(torch.float32) * self.scales[:, :, :, : self.n].float()).to(dtype)

    def nbytes(self) -> int:
        return self.codes.numel() + self.scales.numel() * 2

    def _allocate(self, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode(False):  # normal tensors: a reset zeroes them outside inference mode
            return (torch.zeros(*self.shape, capacity, self.head_dim, dtype=torch.int8),
                    torch.zeros(*self.shape, capacity, 1, dtype=torch.float16))

    def _grow(self, capacity: int) -> None:
        codes, scales = self._allocate(capacity)
        codes[:, :, :, : self.n] = self.codes[:, :, :, : self.n]
        scales[:, :, :, : self.n] = self.scales[:, :, :, : self.n]
        self.codes.zero_()
        self.codes, self.scales = codes, scales


class WarmLayer:
    """One layer's view of the warm tier, set on its `Attention` (`warm`) while the tier holds positions."""

    def __init__(self, warm: WarmKV, layer: int) -> None:
        self.warm, self.layer = warm, layer

    @property
    def n(self) -> int:
        return self.warm.n

    def keys(self, start: int, end: int, dtype: torch.dtype) -> torch.Tensor:
        return self.warm.dequantise(self.layer, 0, start, end, dtype)

    def values(self, start: int, end: int, dtype: torch.dtype) -> torch.Tensor:
        return self.warm.dequantise(self.layer, 1, start, end, dtype)

    def int8_rows(self, which: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.warm.codes[self.layer, which], self.warm.scales[self.layer, which]  # (Hkv, capacity, D), (Hkv, capacity, 1)
