"""Quantised weight containers shared by loaders and layers (torch only)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(slots=True)
class Q4Groups:
    """A 4-bit tensor kept as its integers: w = q * scale + low in groups of 32 along the last axis.

    int4 linear layers take these as they are (no round trip through float32); anything else dequantizes.
    """

    q: torch.Tensor  # (N, K) int32 in 0..15
    scale: torch.Tensor  # (N, K/32) float32
    low: torch.Tensor  # (N, K/32) float32

    @property
    def shape(self) -> torch.Size:
        return self.q.shape

    def dequantize(self) -> torch.Tensor:
        N, K = self.q.shape
        g = self.q.view(N, K // 32, 32).float() * self.scale[..., None] + self.low[..., None]  # (N, K/32, 32)
        return g.view(N, K)
