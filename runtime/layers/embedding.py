"""Token embedding and the LM head; with int8 weights the two share one table when tied."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .linear import quantize_rows_int8

REFINE_TOP = 16


class VocabEmbedding(nn.Module):
    def __init__(self, vocab_size: int, dim: int, *, weight_dtype: str, act_dtype: torch.dtype) -> None:
        super().__init__()
        weight_dtype = "int8" if weight_dtype == "int4" else weight_dtype  # no int4 gather kernel; tables stay int8
        storage = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}[weight_dtype]
        self.weight_dtype, self.act_dtype = weight_dtype, act_dtype
        self.weight = nn.Parameter(torch.empty(vocab_size, dim, dtype=storage), requires_grad=False)
        self.scale = nn.Parameter(torch.empty(vocab_size, dtype=act_dtype), requires_grad=False) if weight_dtype == "int8" else None

    @torch.no_grad()
    def load(self, weight: torch.Tensor) -> None:
        if self.scale is not None:
            q, scale = quantize_rows_int8(weight, self.act_dtype)
            self.weight.copy_(q)
            self.scale.copy_(scale)
        else:
            self.weight.copy_(weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (T,) -> (T, D)
        if self.scale is not None:
            return F.embedding(ids, self.weight).to(self.act_dtype) * self.scale[ids].unsqueeze(1)
        return F.embedding(ids, self.weight).to(self.act_dtype)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """As the LM head: (T, D) -> (T, V) float32."""
        if self.weight_dtype == "fp32":
            return F.linear(hidden, self.weight)
        if self.scale is not None:
            coarse = torch._weight_int8pack_mm(hidden, self.weight, self.scale).float()  # (T, V)
        else:
            coarse = F.linear(hidden, self.weight).float()
        # The kernels round logits to bf16 (a step of 0.125 at 25): close candidates tie and greedy decoding
        # flips. The best REFINE_TOP are recomputed in float32, which is all that sampling ever looks at.
        top = coarse.topk(REFINE_TOP, dim=-1).indices  # (T, k)
        rows = self.weight[top].float()  # (T, k, D)
        if self.scale is not None:
            rows = rows * self.scale[top].float().unsqueeze(-1)
        exact = torch.bmm(rows, hidden.float().unsqueeze(-1)).squeeze(-1)  # (T, k)
        return coarse.scatter_(1, top, exact)
