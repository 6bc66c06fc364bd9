"""The KV block of a single sequence, grown as the sequence grows, and the token ids it currently holds
(for prefix reuse). With a hot byte budget the oldest positions live int8 in a warm tier (`kv_tiers.py`) and
the block holds positions [offset, offset + capacity); without one offset is always 0."""

from __future__ import annotations

import torch

from ..kv.snapshot import contiguous_clone
from ..layers.attention import Attention
from .kv_tiers import WarmKV, WarmLayer

# Smallest block allocated: a short chat never pays for the whole context window. The block doubles from
# there (one copy of the history per doubling, so decode amortises to no copies) up to the window.
MIN_CAPACITY = 256


def common_prefix(cached: list[int], ids: list[int]) -> int:
    """How many leading token ids two sequences share: the part of a prompt whose K/V can be reused."""
    n = 0
    for a, b in zip(cached, ids):
        if a != b:
            break
        n += 1
    return n


class KVCache:
    def __init__(self, layers: list[Attention], max_len: int, dtype: torch.dtype, device: torch.device | str = "cpu",
                 hot_bytes: int | None = None) -> None:
        self.layers = layers
        self.max_len = max_len  # the context window: the block never grows past it
        self.dtype = dtype
        self.device = device
        self.block = self._allocate(min(max_len, MIN_CAPACITY))  # (L, 2, Hkv, capacity, D)
        self.hot_bytes = hot_bytes
        self.warm = WarmKV.for_budget(self.block, hot_bytes) if hot_bytes is not None else None
        self._point_layers()
        self.tokens: list[int] = []  # ids whose K/V are in the warm tier and the block, in order

    @property
    def capacity(self) -> int:
        return self.block.shape[3]

    @property
    def offset(self) -> int:
        """The position the block's first slot holds (the warm positions come before it)."""
        return self.warm.n if self.warm is not None else 0

    def reserve(self, n: int) -> None:
        """Make room for positions [0, n] (one slot more than n: decode's split-key path reads it, masked).

        With a hot budget the oldest computed positions go warm first (`kv_tiers.WarmKV.demote_count`).
        Grows by doubling; the old block is zeroed before it is dropped, so no copy of the history
        survives in freed memory (see clear)."""
        if self.warm is not None:
            self._demote(self.warm.demote_count(min(n + 1, self.max_len) - self.offset, len(self.tokens) - self.offset))
        need = min(n + 1, self.max_len) - self.offset
        if need <= self.capacity:
            return
        capacity = self.capacity
        while capacity < need:
            capacity *= 2
        old = self.block
        self.block = self._allocate(min(capacity, self.max_len))
        self.block[:, :, :, : old.shape[3]] = old
        old.zero_()
        self._point_layers()

    def truncate(self, n: int) -> None:
        """Keep the first n positions. Below the warm tier's end, the warm rows past n are zeroed and the whole
        block (positions past n, all of it) too: the block then starts at position n."""
        del self.tokens[n:]
        if self.warm is not None and n < self.warm.n:
            self.warm.truncate(n)
            self.block.zero_()
            self._point_layers()

    def prefix(self, n: int) -> torch.Tensor:
        """K/V of positions [0, n) as one contiguous (L, 2, Hkv, n, D) tensor (the warm part dequantised)."""
        warm = min(n, self.offset)
        if warm == 0:
            return contiguous_clone(self.block[:, :, :, :n])
        return torch.cat([self.warm.all(self.dtype)[:, :, :, :warm], self.block[:, :, :, : n - warm]], dim=3)

    def _demote(self, k: int) -> None:
        """Move the block's oldest k positions to the warm tier and shift the rest down (zeroing what they leave)."""
        if k <= 0:
            return
        hot = len(self.tokens) - self.offset
        self.warm.append(self.block[:, :, :, :k])
        kept = self.block[:, :, :, k:hot].clone()
        capacity = MIN_CAPACITY
        while capacity < hot - k + 1:
            capacity *= 2
        if self.capacity > 2 * capacity:  # a block grown for an import or a long prompt: give the memory back
            self.block.zero_()
            self.block = self._allocate(capacity)
        else:
            self.block[:, :, :, hot - k : hot].zero_()
        self.block[:, :, :, : hot - k] = kept
        self._point_layers()

    def block_for_import(self, n: int) -> torch.Tensor:
        """The block, with room for positions [0, n], for an import that fills its first n slots at once: a new
        block is not zeroed there (the import writes every byte of it), only past it; the old one is zeroed
        before it is dropped. Nothing past the prefix holds stale or uninitialised memory (see reserve). The warm
        tier is emptied first (the import writes every position from 0; `reserve` demotes afterwards)."""
        if self.warm is not None and self.warm.n:
            self.warm.truncate(0)
            self._point_layers()
        need = min(n + 1, self.max_len)
        if need > self.capacity:
            capacity = self.capacity
            while capacity < need:
                capacity *= 2
            self.block.zero_()
            first = self.layers[0]
            with torch.inference_mode(False):
                self.block = torch.empty(len(self.layers), 2, first.num_kv_heads, min(capacity, self.max_len),
                                         first.head_dim, dtype=self.dtype, device=self.device)
            self._point_layers()
        self.block[:, :, :, n:].zero_()
        return self.block

    def common_prefix(self, ids: list[int]) -> int:
        return common_prefix(self.tokens, ids)

    def clear(self) -> None:
        """Zero the block and shrink it back to the smallest size: used when cached text must not survive (a
        forgotten memory), not just be skipped."""
        self.block.zero_()
        self.tokens.clear()
        if self.warm is not None:
            self.warm.truncate(0)  # zeroed, then dropped
            self.warm = WarmKV.for_budget(self.block, self.hot_bytes)
        if self.capacity > MIN_CAPACITY:
            self.block = self._allocate(min(self.max_len, MIN_CAPACITY))
        self._point_layers()

    def nbytes(self) -> int:
        return self.block.numel() * self.block.element_size() + (self.warm.nbytes() if self.warm is not None else 0)

    def _allocate(self, capacity: int) -> torch.Tensor:
        # zeros, not empty: a slot past the sequence is read (masked) by split-key decode, and must not be NaN
        first = self.layers[0]
        with torch.inference_mode(False):  # a normal tensor: reset() zeroes it outside inference mode
            return torch.zeros(len(self.layers), 2, first.num_kv_heads, capacity, first.head_dim, dtype=self.dtype, device=self.device)

    def _point_layers(self) -> None:
        warm = self.warm if self.warm is not None and self.warm.n else None
        for i, layer in enumerate(self.layers):
            layer.k_cache, layer.v_cache = self.block[i, 0], self.block[i, 1]  # (Hkv, capacity, D) views
            layer.warm = WarmLayer(warm, i) if warm is not None else None  # split attention while rows are warm
