"""The warm tier of a live V4 cache on a CUDA device: the demoted compressed rows in host memory (page-locked,
so copies are asynchronous), int8 codes with one float32 scale per 64 values (the `kernels/kv_quant.py`
format), quantised on the device by its kernel through the dispatcher.

Demoting queues the device-to-host copy on a side stream and records an event; the copy overlaps the next
decode steps and is waited for before the host next reads or grows the rows. A gather copies only the selected
rows' codes and scales back (host to device, non-blocking, on the compute stream, so the dequantise kernel that
follows on that stream sees them complete) and dequantises them there.

On the CPU (`pin=False`, the tests) the same code runs with plain copies and the torch references: the live CPU
cache itself keeps `kv_tiers.Int8Rows`, so its results are unchanged.
"""

from __future__ import annotations

import torch

from ...kernels import dispatch
from ...kernels.kv_quant import BLOCK, QuantizedKV
from .cache import GrowBuffer
from .kv_tiers import SplitRows

FMT = "int8"


class HostInt8Rows:
    """Append-only warm rows of `width` for a cache on `device`, stored on the host (copies share rows)."""

    def __init__(self, width: int, device: torch.device, *, pin: bool) -> None:
        self.width, self.device, self.pin = width, device, pin
        self.codes = GrowBuffer(width, torch.int8, "cpu", pin=pin)
        self.scale = GrowBuffer(width // BLOCK[FMT], torch.float32, "cpu", pin=pin)
        self.copy_stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        # (event, device tensors): copies in flight, and the sources they read, kept alive until they are done
        self.in_flight: list[tuple[torch.cuda.Event, QuantizedKV]] = []

    @staticmethod
    def fits(width: int) -> bool:
        return width % BLOCK[FMT] == 0

    @property
    def n(self) -> int:
        return self.codes.n

    def wait(self) -> None:
        """Until every queued device-to-host copy has landed."""
        for event, _ in self.in_flight:
            event.synchronize()
        self.in_flight.clear()

    def append(self, rows: torch.Tensor) -> None:
        self.wait()  # a buffer that grows copies its rows on the host: they must be complete
        q = dispatch.quantize_kv(rows.contiguous(), FMT)
        if self.copy_stream is None:
            self.codes.append(q.codes)
            self.scale.append(q.scale)
            return
        self.copy_stream.wait_stream(torch.cuda.current_stream(self.device))  # the quantise kernel has run
        with torch.cuda.stream(self.copy_stream):
            self.codes.append(q.codes, non_blocking=self.pin)
            self.scale.append(q.scale, non_blocking=self.pin)
            event = torch.cuda.Event()
            event.record(self.copy_stream)
        self.in_flight.append((event, q))

    def gather_quantised(self, idx: torch.Tensor) -> QuantizedKV:
        """Rows `idx` (1-d, on the cache's device) still quantised, on the device: what the decode attention reads.
        The copies are queued on the current stream, so the kernels that follow on it see them complete."""
        self.wait()
        host_idx = idx.to("cpu", torch.long)
        parts = []
        for buf in (self.codes, self.scale):
            staged = torch.empty(host_idx.shape[0], buf.data.shape[1], dtype=buf.data.dtype, pin_memory=self.pin)
            torch.index_select(buf.view(), 0, host_idx, out=staged)
            parts.append(staged.to(self.device, non_blocking=self.pin))
        return QuantizedKV(FMT, parts[0], parts[1], None, self.width)

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        """Dequantised rows `idx` (any shape, on the cache's device) -> idx.shape + (width,) float32 there."""
        rows = dispatch.dequantize_kv(self.gather_quantised(idx.reshape(-1)))
        return rows.view(*idx.shape, self.width)

    def all(self) -> torch.Tensor:
        return self.gather(torch.arange(self.n, device=self.device))

    def split(self, hot: torch.Tensor) -> SplitRows:
        return SplitRows(self, hot)

    def copy(self) -> HostInt8Rows:
        self.wait()
        out = HostInt8Rows.__new__(HostInt8Rows)
        out.width, out.device, out.pin, out.copy_stream = self.width, self.device, self.pin, self.copy_stream
        out.codes, out.scale, out.in_flight = self.codes.copy(), self.scale.copy(), []
        return out

    def nbytes(self) -> int:
        return self.codes.nbytes() + self.scale.nbytes()
