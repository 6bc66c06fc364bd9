from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cpu_decode import cpu_decode_kernels

KERNEL_MAX_ROWS = 4  # decode steps: one C call; prompt chunks stay on ATen (threaded)


class SiluAndMul(nn.Module):
    """SwiGLU on a merged [gate | up] projection."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, 2I) -> (T, I)
        if x.shape[0] <= KERNEL_MAX_ROWS and x.dtype == torch.bfloat16 and not x.is_cuda and x.is_contiguous() and (kernels := cpu_decode_kernels()) is not None:
            return kernels.silu_mul(x)
        gate, up = x.chunk(2, dim=-1)
        return F.silu(gate) * up
