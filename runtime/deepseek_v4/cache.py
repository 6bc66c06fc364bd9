"""The DeepSeek-V4 cache of one conversation: per layer a raw-KV window (the last `window` positions),
the compressed-entry store, the indexer key store (CSA layers) and the compressors' partial-window states.

Everything a later chunk needs is here, so a prefill can be split anywhere and decode is a chunk of one.

The compressor states cannot be rolled back, so a conversation that diverges from the cached tokens would
start again from nothing. Instead `snapshot()` records the cache at a point (a restore point: the end of
a prompt, of the system prompt, of a turn) and a copy of that snapshot continues from there: window rings
and compressor states are never modified in place (each step assigns new tensors), so a snapshot holds
references to them (states cloned, so a few rows do not pin a whole projection output), and the
append-only stores are shared: rows below a buffer's length never change, and the first append of a
buffer that is no longer the last writer of its rows gives it a copy of its own (copy on write).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(slots=True)
class CompressorState:
    kv: torch.Tensor | None = None  # (r < ratio, coff*c) fp32 rows of the window still filling
    score: torch.Tensor | None = None
    prev_kv: torch.Tensor | None = None  # overlap (ratio 4): first half of the last complete window (ratio, c)
    prev_score: torch.Tensor | None = None
    # the one-token kernels' own buffers, which kv/score ((2, ratio, coff*c): rows 0..r-1) and prev_kv/prev_score
    # ((2, ratio, c)) are views of while they write them in place; never shared (a copy clones the views only)
    rows: torch.Tensor | None = None
    prev: torch.Tensor | None = None
    row_views: dict | None = None  # r -> (rows[0, :r], rows[1, :r]), made once per r
    prev_views: tuple | None = None  # (prev[0], prev[1])

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.kv, self.score, self.prev_kv, self.prev_score) if t is not None)

    def detached(self) -> CompressorState:
        """The same state in tensors of its own (the live ones may be views of a chunk's projection output)."""
        return CompressorState(*(None if t is None else t.clone() for t in (self.kv, self.score, self.prev_kv, self.prev_score)))

    def owns_rows(self) -> bool:
        """kv and score are still views of `rows` (the torch path assigns tensors of its own)."""
        return self.rows is not None and (self.kv is None or (
            self.kv.data_ptr() == self.rows.data_ptr() and self.score.data_ptr() == second_ptr(self.rows)))

    def owns_prev(self) -> bool:
        return self.prev is not None and (self.prev_kv is None or (
            self.prev_kv.data_ptr() == self.prev.data_ptr() and self.prev_score.data_ptr() == second_ptr(self.prev)))


def second_ptr(pair: torch.Tensor) -> int:
    """The address of pair[1] (without the ATen call of indexing it)."""
    return pair.data_ptr() + pair.stride(0) * pair.element_size()


class GrowBuffer:
    """Rows appended at the end; capacity doubles so decode appends are amortised O(1). Copies share the
    rows (copy on write): `filled` (shared by every buffer over the same `data`) is how far it was written."""

    def __init__(self, width: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu", *,
                 pin: bool = False) -> None:
        """`pin`: host rows in page-locked memory, so copies from a CUDA device can be asynchronous."""
        self.data = torch.empty(0, width, dtype=dtype, device=device, pin_memory=pin)
        self.n = 0
        self.filled = [0]
        self.pin = pin

    def reserve(self, k: int) -> None:
        """Room for k more rows in a buffer whose rows from n on no other copy has written."""
        if self.n + k > self.data.shape[0] or self.filled[0] != self.n:
            # full, or another buffer sharing `data` wrote past our rows: continue in a buffer of our own
            cap = self.data.shape[0] if self.n + k <= self.data.shape[0] else max(16, 2 * self.data.shape[0], self.n + k)
            grown = torch.empty(cap, self.data.shape[1], dtype=self.data.dtype, device=self.data.device,
                                pin_memory=self.pin)
            grown[: self.n] = self.data[: self.n]
            self.data, self.filled = grown, [self.n]

    def next_row_ptr(self) -> int:
        """The address row n will have: a kernel may write it, then `commit(1)` stores it (CPU, contiguous)."""
        self.reserve(1)
        return self.data.data_ptr() + self.n * self.data.shape[1] * self.data.element_size()

    def commit(self, k: int) -> None:
        self.n += k
        self.filled[0] = self.n

    def append(self, rows: torch.Tensor, *, non_blocking: bool = False) -> torch.Tensor:
        """`non_blocking` (rows on a CUDA device, this buffer pinned): the copy is queued on the current stream;
        the caller must wait for it before the host reads the rows or appends again."""
        k = rows.shape[0]
        self.reserve(k)
        if non_blocking:
            self.data[self.n : self.n + k].copy_(rows, non_blocking=True)
        else:
            self.data[self.n : self.n + k] = rows.to(self.data.dtype)
        self.commit(k)
        return self.data[: self.n]

    def view(self) -> torch.Tensor:
        return self.data[: self.n]

    def copy(self) -> GrowBuffer:
        """A buffer holding the same rows; appends to either no longer reach the other (copy on write)."""
        out = GrowBuffer.__new__(GrowBuffer)
        out.data, out.n, out.filled, out.pin = self.data, self.n, self.filled, self.pin
        return out

    @classmethod
    def of(cls, rows: torch.Tensor) -> GrowBuffer:
        out = cls(rows.shape[1], rows.dtype, rows.device)
        if rows.shape[0]:
            out.append(rows)
        return out

    def nbytes(self) -> int:
        return self.n * self.data.shape[1] * self.data.element_size()


class V4LayerCache:
    def __init__(self, head_dim: int, index_dim: int, ratio: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        self.ratio = ratio
        self.win: torch.Tensor | None = None  # (<= window, head_dim) raw KV of the latest positions
        self.win_start = 0  # position of win[0]
        # win is ring[ring_lo : filled] while `win is ring_view`: a push writes past it, copies share the ring
        self.ring: torch.Tensor | None = None
        self.ring_view: torch.Tensor | None = None
        self.ring_lo, self.ring_filled = 0, [0]
        self.compressed = GrowBuffer(head_dim, dtype, device) if ratio else None
        self.index_keys = GrowBuffer(index_dim, dtype, device) if ratio == 4 else None
        self.comp_state = CompressorState()
        self.index_state = CompressorState()
        self.warm = None  # kv_tiers.WarmRows: the oldest compressed rows of a CSA layer, once demoted

    def window_kv(self, window: int) -> tuple[torch.Tensor | None, int]:
        return self.win, self.win_start

    def push_window(self, kv: torch.Tensor, start: int, window: int) -> None:
        """Append kv (k, head_dim) at position start, keeping the last `window` rows. The rows live in a ring of
        2 * window rows that `win` is a view of: a decode step writes one row past the view instead of copying
        the window, and the ring is rebuilt once every ~window steps. Rows of a view never change, so a
        snapshot's `win` (the same view) stays valid; a copy that is no longer the last writer of the ring
        continues in one of its own (copy on write, as GrowBuffer)."""
        k = kv.shape[0]
        self.reserve_window(k, window, kv)
        hi = self.ring_lo + (0 if self.win is None else self.win.shape[0])
        self.ring[hi:hi + k] = kv
        self.commit_window(k, start, window)

    def reserve_window(self, k: int, window: int, like: torch.Tensor) -> int:
        """Room for k rows past the window in a ring this cache may write (`like`: a row of the cache's kind);
        returns the address of the first (CPU), where a kernel may write them before `commit_window`."""
        n = 0 if self.win is None else self.win.shape[0]
        hi = self.ring_lo + n
        if self.win is None or self.win is not self.ring_view or hi + k > self.ring.shape[0] or self.ring_filled[0] != hi:
            ring = torch.empty(max(2 * window, n + k), like.shape[-1], dtype=like.dtype, device=like.device)
            if n:
                ring[:n] = self.win
            self.ring, self.ring_lo, self.ring_filled, hi = ring, 0, [n], n
            self.ring_view = ring[:n]
            if n:
                self.win = self.ring_view
        return self.ring.data_ptr() + hi * self.ring.shape[1] * self.ring.element_size()

    def commit_window(self, k: int, start: int, window: int) -> None:
        """The k rows written past the window (after `reserve_window`) join it; the oldest leave past `window`."""
        first = self.win_start if self.win is not None else start
        hi = self.ring_lo + (0 if self.win is None else self.win.shape[0]) + k
        lo = max(self.ring_lo, hi - window)
        first += lo - self.ring_lo
        self.ring_view = self.ring[lo:hi]
        self.win, self.win_start, self.ring_lo, self.ring_filled[0] = self.ring_view, first, lo, hi

    def append_compressed(self, rows: torch.Tensor):
        """Every compressed row so far: a tensor, or (with warm rows) a `kv_tiers.SplitRows` to index."""
        hot = self.compressed.append(rows)
        return hot if self.warm is None else self.warm.split(hot)

    def compressed_rows(self) -> torch.Tensor:
        """All compressed rows in float32 (warm ones dequantised)."""
        hot = self.compressed.view()
        return hot if self.warm is None else torch.cat((self.warm.all(), hot))

    def append_index_keys(self, rows: torch.Tensor) -> torch.Tensor:
        return self.index_keys.append(rows)

    def copy(self) -> V4LayerCache:
        out = V4LayerCache.__new__(V4LayerCache)
        out.ratio, out.win, out.win_start = self.ratio, self.win, self.win_start
        out.ring, out.ring_view, out.ring_lo, out.ring_filled = self.ring, self.ring_view, self.ring_lo, self.ring_filled
        out.compressed = self.compressed.copy() if self.compressed else None
        out.index_keys = self.index_keys.copy() if self.index_keys else None
        out.comp_state, out.index_state = self.comp_state.detached(), self.index_state.detached()
        out.warm = self.warm.copy() if self.warm is not None else None
        return out

    def kv_bytes(self) -> dict[str, int]:
        """Bytes held, by part (what is stored, not capacity)."""
        win = 0 if self.win is None else self.win.numel() * self.win.element_size()
        return {
            "window": win,
            "compressed": self.compressed.nbytes() if self.compressed else 0,
            "compressed_warm": self.warm.nbytes() if self.warm is not None else 0,
            "index_keys": self.index_keys.nbytes() if self.index_keys else 0,
            "states": self.comp_state.nbytes() + self.index_state.nbytes(),
        }


class V4Cache:
    def __init__(self, cfg, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        self.length = 0
        self.layers = [V4LayerCache(cfg.head_dim, cfg.index_head_dim, r, dtype, device) for r in cfg.compress_ratios]
        # the MTP blocks' own state (speculative drafts); not counted in kv_bytes, which is the backbone's cache
        self.mtp = [V4LayerCache(cfg.head_dim, cfg.index_head_dim, r, dtype, device) for r in cfg.mtp_compress_ratios]

    def snapshot(self) -> V4Cache:
        """This cache as it is now, unaffected by later steps on either copy."""
        out = V4Cache.__new__(V4Cache)
        out.length = self.length
        out.layers = [lc.copy() for lc in self.layers]
        out.mtp = [lc.copy() for lc in self.mtp]
        return out

    def kv_bytes(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for layer in self.layers:
            for k, v in layer.kv_bytes().items():
                total[k] = total.get(k, 0) + v
        return total
