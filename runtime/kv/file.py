"""Snapshot files: safetensors whose header metadata holds the snapshot's `KVMeta` (magic, format version,
architecture, model identity, dtype, length, token ids, a crc32 per stored tensor) and its digest.

Writes are atomic (temp file, fsync, rename). Reading verifies the header digest and every tensor's
checksum: a truncated or bit-flipped file is refused with a reason, never half used.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .codec import EncodedSnapshot
from .snapshot import KVMeta, SnapshotRefused

META_KEY = "dsv4_kv"
DIGEST_KEY = "dsv4_kv_digest"


def crc32(t: torch.Tensor) -> int:
    return zlib.crc32(t.contiguous().view(torch.uint8).numpy()) if t.numel() else 0


def meta_digest(meta_json: str) -> str:
    return hashlib.blake2b(meta_json.encode(), digest_size=16).hexdigest()


def write_snapshot(path: Path, enc: EncodedSnapshot) -> str:
    """Write `enc` to `path` atomically; returns the header digest (the file's checksum in the store)."""
    for name, info in enc.meta.tensors.items():
        info.checksums = {part: crc32(t) for part, t in enc.parts.items() if part == name or part.startswith(name + ".")}
    meta_json = enc.meta.model_dump_json()
    digest = meta_digest(meta_json)
    data = save_safetensors({k: v.contiguous() for k, v in enc.parts.items()},
                            metadata={META_KEY: meta_json, DIGEST_KEY: digest})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return digest


def read_header(data: bytes, path: Path) -> tuple[KVMeta, str]:
    if len(data) < 8:
        raise SnapshotRefused(f"{path.name} is truncated ({len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if n <= 0 or 8 + n > len(data):
        raise SnapshotRefused(f"{path.name} is truncated or not a snapshot (header of {n} bytes, file of {len(data)})")
    try:
        header = json.loads(data[8 : 8 + n])
        extra = header["__metadata__"]
        meta_json, digest = extra[META_KEY], extra[DIGEST_KEY]
    except (ValueError, KeyError, TypeError):
        raise SnapshotRefused(f"{path.name} has no readable snapshot header (the file is corrupt)") from None
    if meta_digest(meta_json) != digest:
        raise SnapshotRefused(f"{path.name}: the snapshot header does not match its digest (the file is corrupt)")
    try:
        return KVMeta.model_validate_json(meta_json), digest
    except ValidationError as exc:
        raise SnapshotRefused(f"{path.name}: the snapshot header is invalid ({exc.error_count()} errors)") from None


def read_snapshot(path: Path, *, expect_digest: str | None = None) -> EncodedSnapshot:
    """Read and verify a snapshot file. Raises SnapshotRefused (missing, truncated, corrupt, mismatched)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotRefused(f"{path.name} is missing") from None
    except OSError as exc:
        raise SnapshotRefused(f"{path.name} cannot be read ({exc.strerror})") from None
    meta, digest = read_header(data, path)
    if expect_digest is not None and digest != expect_digest:
        raise SnapshotRefused(f"{path.name} is not the snapshot its record names (digest differs)")
    try:
        parts = load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise SnapshotRefused(f"{path.name} is truncated or corrupt ({exc})") from None
    for name, info in meta.tensors.items():
        for part, expected in info.checksums.items():
            if part not in parts:
                raise SnapshotRefused(f"{path.name}: tensor {part!r} is missing")
            if crc32(parts[part]) != expected:
                raise SnapshotRefused(f"{path.name}: tensor {part!r} fails its checksum (the file is corrupt)")
    return EncodedSnapshot.from_parts(meta, parts)
