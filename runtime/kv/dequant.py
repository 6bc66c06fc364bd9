"""The one-pass dequantisation kernels (`dequant.c`): int8 / int4 blocks straight into a bf16 KV block.

Built once per machine with the system C compiler (the builder of `runtime/layers/cpu_decode.py`, cached
under `$DSV4_HOME/cache/kernels/`), called through ctypes. Where it cannot be built `dequant_kernels()` is
None and `codec.py` decodes with torch (the same values, several passes). `DSV4_KV_DEQUANT_KERNEL=0` turns
it off (for comparisons and for the tests of the torch path).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("dequant.c")


class RowLayout:
    """A destination whose leading dimensions collapse to rows `row_stride` elements apart, each row `width`
    contiguous elements: what the kernels write. None from `of` when `out` is not laid out so."""

    def __init__(self, rows: int, width: int, row_stride: int) -> None:
        self.rows, self.width, self.row_stride = rows, width, row_stride

    @classmethod
    def of(cls, out: torch.Tensor) -> RowLayout | None:
        """Rows over all but the last two dims (positions x width of the block are one row)."""
        if out.dim() < 2 or out.stride(-1) != 1 or out.stride(-2) != out.shape[-1]:
            return None
        lead = out.shape[:-2]
        for i in range(len(lead) - 1):  # the leading dims must collapse into one regular stride
            if lead[i + 1] > 1 and out.stride(i) != out.stride(i + 1) * lead[i + 1]:
                return None
        row_stride = out.stride(len(lead) - 1) if lead else 0
        rows = 1
        for d in lead:
            rows *= d
        return cls(rows, out.shape[-2] * out.shape[-1], row_stride)


class DequantKernels:
    def __init__(self, library: ctypes.CDLL) -> None:
        self._int4 = library.dsv4_dequant_int4_bf16
        self._int4.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3 + [ctypes.c_int, ctypes.c_int64, ctypes.c_int]
        self._int4.restype = ctypes.c_int
        self._int8 = library.dsv4_dequant_int8_bf16
        self._int8.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 3 + [ctypes.c_int, ctypes.c_int64, ctypes.c_int]
        self._int8.restype = ctypes.c_int

    def int4_into(self, out: torch.Tensor, layout: RowLayout, packed: torch.Tensor, step: torch.Tensor,
                  lo: torch.Tensor, block: int, src_row_blocks: int) -> None:
        """Row r of `out` (bf16) <- the first `layout.width / block` blocks of source row r (rows of
        `src_row_blocks` blocks; packed: uint8 two codes a byte, step/lo: fp16 one per block)."""
        self._check(out, layout, block, src_row_blocks, (packed, torch.uint8, block // 2), (step, torch.float16, 1),
                    (lo, torch.float16, 1))
        status = self._int4(packed.data_ptr(), step.data_ptr(), lo.data_ptr(), out.data_ptr(), layout.rows,
                            layout.width // block, src_row_blocks, block, layout.row_stride, torch.get_num_threads())
        if status != 0:
            raise RuntimeError(f"int4 dequantisation kernel refused its inputs (status {status})")

    def int8_into(self, out: torch.Tensor, layout: RowLayout, q: torch.Tensor, scale: torch.Tensor, block: int,
                  src_row_blocks: int) -> None:
        self._check(out, layout, block, src_row_blocks, (q, torch.int8, block), (scale, torch.float16, 1))
        status = self._int8(q.data_ptr(), scale.data_ptr(), out.data_ptr(), layout.rows, layout.width // block,
                            src_row_blocks, block, layout.row_stride, torch.get_num_threads())
        if status != 0:
            raise RuntimeError(f"int8 dequantisation kernel refused its inputs (status {status})")

    @staticmethod
    def _check(out: torch.Tensor, layout: RowLayout, block: int, src_row_blocks: int,
               *parts: tuple[torch.Tensor, torch.dtype, int]) -> None:
        """Every pointer the kernel follows stays inside its tensor (the kernel trusts these numbers)."""
        assert out.dtype == torch.bfloat16 and not out.is_cuda and layout.width % block == 0
        assert layout.width // block <= src_row_blocks
        for t, dtype, per_block in parts:
            assert t.dtype == dtype and t.is_contiguous() and t.numel() >= layout.rows * src_row_blocks * per_block


@functools.cache
def dequant_kernels() -> DequantKernels | None:
    if os.environ.get("DSV4_KV_DEQUANT_KERNEL", "1") == "0" or platform.system() != "Linux":
        return None
    from dsv4.home import dsv4_home  # the one home rule, importable from every layer

    from ..layers.cpu_decode import build_library

    library = build_library(dsv4_home() / "cache" / "kernels", (SOURCE,), ())
    return DequantKernels(ctypes.CDLL(str(library))) if library is not None else None
