"""Triton when it is installed, else stand-ins that let the kernel files import (their kernels are then never
launched: the dispatcher runs the torch references instead).

The interpreter (`TRITON_INTERPRET=1`) is read when a kernel is decorated, i.e. when its file is imported, so
it must be set before the first kernel file is imported; the tests do that in tests/kernels/conftest.py."""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl

    AVAILABLE = True
except ImportError:  # the `gpu` extra is not installed
    AVAILABLE = False

    class _Language:
        constexpr = int  # kernel signatures annotate with tl.constexpr

    class _Triton:
        @staticmethod
        def jit(fn):
            return fn

    triton, tl = _Triton(), _Language()


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def check(cond: bool, message: str) -> None:
    """A launcher's precondition: a wrong shape, dtype or device is a caller's bug, caught before any launch."""
    if not cond:
        raise ValueError(message)


def check_tensor(name: str, t: torch.Tensor, *, dtypes: tuple[torch.dtype, ...], dim: int | None = None,
                 contiguous: bool = True) -> None:
    check(AVAILABLE, "triton is not installed (pip install 'dsv4-code[gpu]')")
    check(isinstance(t, torch.Tensor), f"{name} must be a tensor, not {type(t).__name__}")
    check(t.dtype in dtypes, f"{name} must be one of {dtypes}, not {t.dtype}")
    check(dim is None or t.dim() == dim, f"{name} must have {dim} dims, not shape {tuple(t.shape)}")
    check(not contiguous or t.is_contiguous(), f"{name} must be contiguous")
    check(t.is_cuda or interpreting(), f"{name} is on {t.device}: Triton kernels run on CUDA (or TRITON_INTERPRET=1)")


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())
