from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualRMSNorm(nn.Module):
    """The pre-norm block pattern: add the residual, then normalise; returns both."""

    def __init__(self, dim: int, eps: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype), requires_grad=False)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Adds `residual` first when given (the pre-norm block pattern) and returns (normed, new residual)."""
        if residual is not None:
            x = x + residual  # (T, D)
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps), x


class RMSNorm(nn.Module):
    """x / rms(x) * weight, in float32 (DeepSeek-V4's norms)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
