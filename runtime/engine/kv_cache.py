"""The KV block of a single sequence, grown as the sequence grows, and the token ids it currently holds
(for prefix reuse)."""

from __future__ import annotations

import torch

from ..layers.attention import Attention

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
    def __init__(self, layers: list[Attention], max_len: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> None:
        self.layers = layers
        self.max_len = max_len  # the context window: the block never grows past it
        self.dtype = dtype
        self.device = device
        self.block = self._allocate(min(max_len, MIN_CAPACITY))  # (L, 2, Hkv, capacity, D)
        self._point_layers()
        self.tokens: list[int] = []  # ids whose K/V are in the block, in order

    @property
    def capacity(self) -> int:
        return self.block.shape[3]

    def reserve(self, n: int) -> None:
        """Make room for positions [0, n] (one slot more than n: decode's split-key path reads it, masked).

        Grows by doubling; the old block is zeroed before it is dropped, so no copy of the history
        survives in freed memory (see clear)."""
        need = min(n + 1, self.max_len)
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

    def block_for_import(self, n: int) -> torch.Tensor:
        """The block, with room for positions [0, n], for an import that fills its first n slots at once: a new
        block is not zeroed there (the import writes every byte of it), only past it; the old one is zeroed
        before it is dropped. Nothing past the prefix holds stale or uninitialised memory (see reserve)."""
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
        if self.capacity > MIN_CAPACITY:
            self.block = self._allocate(min(self.max_len, MIN_CAPACITY))
            self._point_layers()

    def nbytes(self) -> int:
        return self.block.numel() * self.block.element_size()

    def _allocate(self, capacity: int) -> torch.Tensor:
        # zeros, not empty: a slot past the sequence is read (masked) by split-key decode, and must not be NaN
        first = self.layers[0]
        with torch.inference_mode(False):  # a normal tensor: reset() zeroes it outside inference mode
            return torch.zeros(len(self.layers), 2, first.num_kv_heads, capacity, first.head_dim, dtype=self.dtype, device=self.device)

    def _point_layers(self) -> None:
        for i, layer in enumerate(self.layers):
            layer.k_cache, layer.v_cache = self.block[i, 0], self.block[i, 1]  # (Hkv, capacity, D) views
