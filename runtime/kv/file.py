"""Snapshot files: safetensors whose header metadata holds the snapshot's `KVMeta` (magic, format version,
architecture, model identity, dtype, length, token ids, a crc32 per stored tensor) and its digest.

Writes are atomic (temp file, fsync, rename). Reading verifies the header digest and every tensor's
checksum: a truncated or bit-flipped file is refused with a reason, never half used. A read is one copy:
the file into a buffer (`readinto`), the tensors views of it (every offset checked against the header's
shapes and the buffer's size first); crc32 over the payload costs ~12 ms at 8k tokens, a tenth of a cold
restore, so it stays the integrity check.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zlib
from pathlib import Path

import numpy
import torch
from pydantic import ValidationError
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


# the safetensors dtype names a snapshot part may have (codec.py writes no others)
SAFETENSORS_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "I8": torch.int8,
                      "U8": torch.uint8, "I64": torch.int64}


def read_header(data: memoryview, path: Path) -> tuple[KVMeta, str, dict, int]:
    """The snapshot metadata, its digest, the safetensors tensor table and where the payload starts."""
    if len(data) < 8:
        raise SnapshotRefused(f"{path.name} is truncated ({len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if n <= 0 or 8 + n > len(data):
        raise SnapshotRefused(f"{path.name} is truncated or not a snapshot (header of {n} bytes, file of {len(data)})")
    try:
        header = json.loads(bytes(data[8 : 8 + n]))
        extra = header.pop("__metadata__")
        meta_json, digest = extra[META_KEY], extra[DIGEST_KEY]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SnapshotRefused(f"{path.name} has no readable snapshot header (the file is corrupt)") from None
    if meta_digest(meta_json) != digest:
        raise SnapshotRefused(f"{path.name}: the snapshot header does not match its digest (the file is corrupt)")
    try:
        meta = KVMeta.model_validate_json(meta_json)
    except ValidationError as exc:
        raise SnapshotRefused(f"{path.name}: the snapshot header is invalid ({exc.error_count()} errors)") from None
    return meta, digest, header, 8 + n


def tensor_views(data: memoryview, table: dict, start: int, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors table as views of `data` (no copy), each checked to lie inside it."""
    parts = {}
    for name, entry in table.items():
        try:
            dtype = SAFETENSORS_DTYPES[entry["dtype"]]
            shape = [int(d) for d in entry["shape"]]
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SnapshotRefused(f"{path.name}: tensor {name!r} has an unreadable entry (the file is corrupt)") from None
        count = math.prod(shape)
        if any(d < 0 for d in shape) or not 0 <= begin <= end <= len(data) - start or end - begin != count * dtype.itemsize:
            raise SnapshotRefused(f"{path.name} is truncated or corrupt (tensor {name!r} does not fit the file)")
        if count == 0:
            parts[name] = torch.empty(shape, dtype=dtype)
            continue
        parts[name] = torch.frombuffer(data, dtype=dtype, count=count, offset=start + begin).view(shape)
    return parts


def read_bytes(path: Path) -> memoryview:
    """The file's bytes in a buffer that is not zero-filled first (a bytearray's memset is a fifth of the read);
    every byte of it is the file's, or the read is refused."""
    try:
        with open(path, "rb", buffering=0) as handle:
            size = os.fstat(handle.fileno()).st_size
            data = memoryview(numpy.empty(size, dtype=numpy.uint8))
            got = 0
            while got < size and (chunk := handle.readinto(data[got:])):  # one call, but a read may return less
                got += chunk
    except FileNotFoundError:
        raise SnapshotRefused(f"{path.name} is missing") from None
    except OSError as exc:
        raise SnapshotRefused(f"{path.name} cannot be read ({exc.strerror})") from None
    if got != size:  # the file shrank while it was read (a concurrent sweep, a truncation)
        raise SnapshotRefused(f"{path.name} is truncated ({got} of {size} bytes read)")
    return data


def read_snapshot(path: Path, *, expect_digest: str | None = None) -> EncodedSnapshot:
    """Read and verify a snapshot file. Raises SnapshotRefused (missing, truncated, corrupt, mismatched)."""
    data = read_bytes(path)
    meta, digest, table, start = read_header(data, path)
    if expect_digest is not None and digest != expect_digest:
        raise SnapshotRefused(f"{path.name} is not the snapshot its record names (digest differs)")
    parts = tensor_views(data, table, start, path)
    for name, info in meta.tensors.items():
        for part, expected in info.checksums.items():
            if part not in parts:
                raise SnapshotRefused(f"{path.name}: tensor {part!r} is missing")
            if crc32(parts[part]) != expected:
                raise SnapshotRefused(f"{path.name}: tensor {part!r} fails its checksum (the file is corrupt)")
    return EncodedSnapshot.from_parts(meta, parts)
