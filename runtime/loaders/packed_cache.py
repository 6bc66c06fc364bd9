"""Packed weights cached on disk, so a second load of a checkpoint maps them instead of repacking.

Repacking a GGUF (dequantise, requantise to int8 rows, pack int4 groups, bf16 prefill copies) costs seconds;
the packed result is a state dict that `torch.load(mmap=True)` maps in milliseconds. The cache file is
named by the checkpoint's content digest plus the packing (precision, prefill copy, format version), under
`$DSV4_HOME/cache/packed/`. The digest of a file is itself remembered by (path, size, mtime, inode), so a
warm load hashes nothing. Writes are atomic (temp file + rename); a cache file that does not load (cut
off, corrupt, another version's) is deleted and rebuilt by the caller.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch

# bump when the packed layout of any layer changes: old files are then simply never looked up
FORMAT_VERSION = 1
HASH_CHUNK = 1 << 24


def cache_root() -> Path:
    from dsv4.home import dsv4_home  # the one home rule, importable from every layer

    return dsv4_home() / "cache" / "packed"


def file_digest(path: Path, root: Path) -> str:
    """sha256 of the file's bytes, remembered by its (path, size, mtime, inode) so it is computed once per version."""
    st = path.stat()
    stamp = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    memo = root / "digests" / (hashlib.sha256(stamp.encode()).hexdigest()[:32] + ".json")
    if memo.is_file():
        try:
            entry = json.loads(memo.read_text())
        except (OSError, ValueError):
            entry = {}
        if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
            return entry["sha256"]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        _atomic_write(memo, json.dumps({"stamp": stamp, "sha256": digest}).encode())
    except OSError:
        pass  # not remembered: the next load hashes the file again
    return digest


def packed_path(root: Path, digest: str, packing: str) -> Path:
    key = hashlib.sha256(f"{digest}|{packing}|v{FORMAT_VERSION}|torch {torch.__version__}".encode()).hexdigest()[:40]
    return root / f"{key}.pt"


def load_packed(path: Path) -> dict[str, torch.Tensor] | None:
    """The state dict in `path`, memory-mapped; None (and the file removed) when it is missing or does not load."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile):
        path.unlink(missing_ok=True)
        return None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        path.unlink(missing_ok=True)
        return None
    return state


def save_packed(path: Path, state: dict[str, torch.Tensor]) -> bool:
    """Write the cache file atomically; False when it cannot be written (a full disk, a read-only home): the
    cache only saves time, so the load that just succeeded must not fail for it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    except OSError:
        return False
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError):  # torch.save reports a short write as RuntimeError
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)
    return True


def cached_file_for(checkpoint: Path, packing: str) -> Path | None:
    """Where the packed weights of `checkpoint` with `packing` live; None when the cache folder is unusable."""
    try:
        root = cache_root()
        return packed_path(root, file_digest(checkpoint, root), packing)
    except OSError:
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
