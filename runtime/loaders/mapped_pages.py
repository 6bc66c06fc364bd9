"""Weights used only now and then (the bf16 prefill copies) are not kept resident: when they are mapped from the
packed-weight cache file, their pages are handed back after each use.

`madvise(MADV_DONTNEED)` on a private file mapping drops the process's pages; the next read maps them again
from the page cache (the kernel maps 16 pages a fault), so nothing is read from disk while the file stays
cached, and the kernel may evict it under memory pressure like any clean cache page. Only ranges inside a
private file mapping are ever released: on anonymous memory (weights packed in this process) the same call
would zero them. The weights must never be written, which holds for inference.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
from pathlib import Path

import torch

MADV_DONTNEED = 4
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def private_file_ranges() -> list[tuple[int, int]]:
    """Address ranges of this process's private file mappings (from /proc/self/maps; none off Linux)."""
    maps = Path("/proc/self/maps")
    if _libc is None or not maps.is_file():
        return []
    ranges = []
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        # address perms offset dev inode [path]: a file mapping has an inode and a path that is not [heap] etc.
        if len(fields) == 6 and fields[1].endswith("p") and fields[4] != "0" and fields[5].startswith("/"):
            start, end = (int(a, 16) for a in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def within(tensor: torch.Tensor, ranges: list[tuple[int, int]]) -> bool:
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    return any(lo <= start and end <= hi for lo, hi in ranges)


def release(tensor: torch.Tensor) -> None:
    """Drop the whole pages of `tensor` from this process (it must lie in a private file mapping: see `within`)."""
    page = mmap.PAGESIZE
    start = tensor.data_ptr()
    lo, hi = -(-start // page) * page, (start + tensor.numel() * tensor.element_size()) // page * page
    if hi > lo:
        _libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), MADV_DONTNEED)
