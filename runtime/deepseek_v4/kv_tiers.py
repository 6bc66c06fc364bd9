"""The warm tier of a live V4 cache: a CSA layer's oldest compressed rows in int8 (one fp16 scale per 64
values), dequantised only for the top-k rows the indexer selects. The indexer keys stay hot (every query
scores all of them), and so do the window, the states and the HCA layers' few rows.

Nothing here runs unless the engine is given a hot byte budget (`V4Engine(hot_kv_bytes=...)`): without one
the cache is all hot and every step is bit for bit what it was. A cache on a CUDA device keeps its warm rows in
pinned host memory instead (`warm_host.HostInt8Rows`: the kernels' int8 format, asynchronous copies).
"""

from __future__ import annotations

from typing import Protocol

import torch

from ..kv.codec import INT8_BLOCK, block_size, quantise_int8
from .cache import GrowBuffer

MIN_HOT_ROWS = 16
DEMOTE_STEP = 64  # rows moved at a time: the hot buffer is rebuilt once per step, not once per row


class Int8Rows:
    """Append-only int8 rows with per-block fp16 scales (copies share rows, like GrowBuffer)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.block = block_size(torch.empty(width), INT8_BLOCK)
        self.q = GrowBuffer(width, torch.int8)
        self.scale = GrowBuffer(width // self.block, torch.float16)

    @property
    def n(self) -> int:
        return self.q.n

    def append(self, rows: torch.Tensor) -> None:
        parts = quantise_int8(rows, self.block)
        self.q.append(parts[""].view(rows.shape[0], self.width))
        self.scale.append(parts[".scale"].view(rows.shape[0], -1))

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        """Dequantised rows `idx` (any shape of row indices) -> idx.shape + (width,) float32."""
        q = self.q.view()[idx].float()
        scale = self.scale.view()[idx].float().repeat_interleave(self.block, dim=-1)
        return q * scale

    def all(self) -> torch.Tensor:
        return self.gather(torch.arange(self.n))

    def split(self, hot: torch.Tensor) -> SplitRows:
        return SplitRows(self, hot)

    def gather_quantised(self, idx: torch.Tensor) -> None:
        """Its fp16 scales are not the kernels' format: the kernel attention takes its rows dequantised."""
        return None

    def copy(self) -> Int8Rows:
        out = Int8Rows.__new__(Int8Rows)
        out.width, out.block, out.q, out.scale = self.width, self.block, self.q.copy(), self.scale.copy()
        return out

    def nbytes(self) -> int:
        return self.q.nbytes() + self.scale.nbytes()


class WarmRows(Protocol):
    """A warm tier: `Int8Rows` (beside a CPU cache) or `warm_host.HostInt8Rows` (in host memory for a CUDA cache)."""

    @property
    def n(self) -> int: ...

    def append(self, rows: torch.Tensor) -> None: ...

    def gather(self, idx: torch.Tensor) -> torch.Tensor: ...

    def gather_quantised(self, idx: torch.Tensor):
        """Rows `idx` (1-d) as a `kernels.kv_quant.QuantizedKV` on the cache's device, or None."""

    def all(self) -> torch.Tensor: ...

    def split(self, hot: torch.Tensor) -> SplitRows: ...

    def copy(self) -> WarmRows: ...

    def nbytes(self) -> int: ...


class SplitRows:
    """Rows 0..n_warm-1 warm, the rest hot: what `append_compressed` returns once a layer has warm rows.
    Attention only indexes it with the indexer's selection, so only those rows are dequantised."""

    def __init__(self, warm: WarmRows, hot: torch.Tensor) -> None:
        self.warm, self.hot = warm, hot

    @property
    def shape(self) -> tuple[int, int]:
        return (self.warm.n + self.hot.shape[0], self.hot.shape[1])

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        n_warm = self.warm.n
        if self.hot.shape[0] == 0:
            return self.warm.gather(idx)
        out = self.hot[(idx - n_warm).clamp(min=0)]
        is_warm = idx < n_warm
        if bool(is_warm.any()):
            out[is_warm] = self.warm.gather(idx[is_warm])
        return out

    def selected(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For the sparse-attention kernel, which reads one tensor of rows: the warm rows `idx` (S, k) selects
        (each once, dequantised) followed by the hot rows, and `idx` renumbered into them (-1 kept)."""
        n_warm = self.warm.n
        is_warm = (idx >= 0) & (idx < n_warm)
        chosen, where = torch.unique(idx[is_warm], return_inverse=True)
        rows = torch.cat((self.warm.gather(chosen), self.hot.float()))
        renumbered = torch.where(idx >= n_warm, idx - n_warm + chosen.numel(), idx)
        renumbered[is_warm] = where
        return rows, renumbered


    def selected_quantised(self, idx: torch.Tensor):
        """Decode (idx (1, k)): the hot rows, `idx` renumbered into them (warm candidates -1), and the selected warm
        rows still quantised (a `QuantizedKV`, every row a candidate); None when the tier has no such format."""
        n_warm = self.warm.n
        warm = self.warm.gather_quantised(idx[(idx >= 0) & (idx < n_warm)])
        if warm is None:
            return None
        return self.hot, torch.where(idx >= n_warm, idx - n_warm, torch.full_like(idx, -1)), warm


def selected_rows(comp, idx: torch.Tensor, *, decode: bool):
    """(rows, idx, quantised rows or None): what a CSA layer's kernel attention reads. All hot: the store itself.
    With warm rows: in decode the selected warm rows quantised (read by the quantised-KV attention kernel), else
    the selected warm rows dequantised in front of the hot ones."""
    if not isinstance(comp, SplitRows):
        return comp, idx, None
    quantised = comp.selected_quantised(idx) if decode else None
    return quantised if quantised is not None else (*comp.selected(idx), None)


def demote_oldest(lc, max_hot_rows: int, *, host: bool | None = None) -> None:
    """Move a CSA layer's oldest compressed rows to its warm tier until at most `max_hot_rows` are hot.
    `host`: the warm rows in host memory (`warm_host`, pinned for a CUDA cache); None: when the cache is on CUDA.
    Rows whose width the kernels' int8 blocks do not divide stay hot there."""
    hot = lc.compressed
    max_hot_rows = max(MIN_HOT_ROWS, max_hot_rows)
    if lc.ratio != 4 or hot.n < max_hot_rows + DEMOTE_STEP:
        return
    k = hot.n - max_hot_rows
    if lc.warm is None:
        lc.warm = new_warm_rows(hot.data, hot.data.is_cuda if host is None else host)
        if lc.warm is None:
            return
    rows = hot.view()
    lc.warm.append(rows[:k])
    lc.compressed = GrowBuffer.of(rows[k:].clone())  # a new buffer: restore points keep the old one


def new_warm_rows(hot: torch.Tensor, host: bool) -> WarmRows | None:
    if not host:
        return Int8Rows(hot.shape[1])
    from .warm_host import HostInt8Rows  # imports the kernels' files (and triton): only for these caches

    if not HostInt8Rows.fits(hot.shape[1]):
        return None
    return HostInt8Rows(hot.shape[1], hot.device, pin=hot.is_cuda)
