from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cpu_decode import cpu_decode_kernels

# Up to this many rows (decode steps) a bf16 norm on the CPU is one C call; larger chunks stay on ATen (threaded).
KERNEL_MAX_ROWS = 4


class ResidualRMSNorm(nn.Module):
    """The pre-norm block pattern: add the residual, then normalise; returns both."""

    def __init__(self, dim: int, eps: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=dtype), requires_grad=False)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Adds `residual` first when given (the pre-norm block pattern) and returns (normed, new residual).
        On the CPU kernel path the sum is written into `x` (a sublayer's fresh output) instead of a new tensor."""
        if x.shape[0] <= KERNEL_MAX_ROWS and x.dtype == torch.bfloat16 and not x.is_cuda and x.is_contiguous() and (kernels := cpu_decode_kernels()) is not None:
            return kernels.add_rms_norm(x, residual, self.weight, self.eps), x
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
