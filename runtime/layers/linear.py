"""Linear layers whose weights live in fp32, bf16 or int8 (per-row scales), chosen when the model is built.

int8 is for speed on CPU: at batch 1 a decode step is a series of matrix-vector products bound by
memory bandwidth, and `torch._weight_int8pack_mm` (bf16 activations) reads a quarter of the bytes of
fp32 at about 40 GB/s. fp32 is the parity mode (`models score`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_DTYPES = ("fp32", "bf16", "int8")


def quantize_rows_int8(w: torch.Tensor, scale_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: w ~= q * scale[:, None]."""
    scale = (w.abs().amax(dim=1).clamp(min=1e-12) / 127.0).to(scale_dtype)  # (N,)
    q = torch.round(w / scale.float()[:, None]).clamp_(-127, 127).to(torch.int8)  # (N, K)
    return q, scale


class Linear(nn.Module):
    """y = x W^T (+ b) on 2-D inputs (tokens, features). Merged projections load one row block per shard."""

    def __init__(
        self, in_features: int, out_features: int | list[int], *, bias: bool, weight_dtype: str, act_dtype: torch.dtype
    ) -> None:
        super().__init__()
        assert weight_dtype in WEIGHT_DTYPES, weight_dtype
        sizes = out_features if isinstance(out_features, list) else [out_features]
        self.shard_offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        self.shard_sizes = sizes
        self.in_features, self.out_features = in_features, sum(sizes)
        self.weight_dtype, self.act_dtype = weight_dtype, act_dtype
        storage = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}[weight_dtype]
        self.weight = nn.Parameter(torch.empty(self.out_features, in_features, dtype=storage), requires_grad=False)
        self.scale = nn.Parameter(torch.empty(self.out_features, dtype=act_dtype), requires_grad=False) if weight_dtype == "int8" else None
        self.bias = nn.Parameter(torch.zeros(self.out_features, dtype=act_dtype), requires_grad=False) if bias else None
        if weight_dtype == "int8":
            assert act_dtype == torch.bfloat16, "the CPU int8 kernel is only fast with bf16 activations"

    @torch.no_grad()
    def load_shard(self, shard: int, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None) -> None:
        rows = slice(self.shard_offsets[shard], self.shard_offsets[shard] + self.shard_sizes[shard])
        if weight is not None:
            assert weight.shape == (self.shard_sizes[shard], self.in_features), (weight.shape, self.shard_sizes[shard])
            if self.weight_dtype == "int8":
                q, scale = quantize_rows_int8(weight, self.act_dtype)
                self.weight[rows] = q
                self.scale[rows] = scale
            else:
                self.weight[rows] = weight.to(self.weight.dtype)
        if bias is not None:
            self.bias[rows] = bias.to(self.act_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, in) -> (T, out)
        if self.scale is not None:
            y = torch._weight_int8pack_mm(x, self.weight, self.scale)
            return y if self.bias is None else y + self.bias
        return F.linear(x, self.weight, self.bias)
