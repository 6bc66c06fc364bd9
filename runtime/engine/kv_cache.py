"""One preallocated KV block for a single sequence, and the token ids it currently holds (for prefix reuse)."""

from __future__ import annotations

import torch

from ..layers.attention import Attention


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
        first = layers[0]
        self.max_len = max_len
        # (L, 2, Hkv, S, D): allocated once, so decode never reallocates or copies the history
        self.block = torch.zeros(len(layers), 2, first.num_kv_heads, max_len, first.head_dim, dtype=dtype, device=device)
        for i, layer in enumerate(layers):
            layer.k_cache, layer.v_cache = self.block[i, 0], self.block[i, 1]  # (Hkv, S, D) views
        self.tokens: list[int] = []  # ids whose K/V are in the block, in order

    def common_prefix(self, ids: list[int]) -> int:
        return common_prefix(self.tokens, ids)

    def clear(self) -> None:
        """Zero the block: used when cached text must not survive (a forgotten memory), not just be skipped."""
        self.block.zero_()
        self.tokens.clear()

    def nbytes(self) -> int:
        return self.block.numel() * self.block.element_size()
