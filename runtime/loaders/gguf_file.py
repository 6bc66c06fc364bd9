"""A GGUF reader that parses the header in one pass over a memory map.

`gguf.GGUFReader` builds a numpy view for every string of the vocabulary (about 2 s for a 49k vocab);
reading them with `struct` is about 20x faster, and load time is a target. Quantised blocks are left
in place in the map and turned into tensors by `dequant.py`.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadModelFile

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types -> (struct format, numpy dtype)
_SCALARS = {
    0: ("<B", np.uint8), 1: ("<b", np.int8), 2: ("<H", np.uint16), 3: ("<h", np.int16),
    4: ("<I", np.uint32), 5: ("<i", np.int32), 6: ("<f", np.float32), 7: ("<?", np.bool_),
    10: ("<Q", np.uint64), 11: ("<q", np.int64), 12: ("<d", np.float64),
}
_STRING, _ARRAY = 8, 9


@dataclass(slots=True, frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # numpy order (slowest first), i.e. the reverse of ggml's ne[]
    ggml_type: int
    offset: int  # absolute byte offset in the file
    nbytes: int

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


class GGUFFile:
    """Metadata (a dict) and tensor infos of one GGUF file; tensor bytes are views into an mmap."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self.path.open("rb") as fh:
            size = self.path.stat().st_size
            if size < 24:
                raise BadModelFile(f"{self.path}: {size} bytes is too small to be a GGUF file")
            self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        self.metadata: dict[str, Any] = {}
        self.tensors: dict[str, TensorInfo] = {}
        self._parse(size)

    def _parse(self, size: int) -> None:
        buf = self._map
        if buf[:4] != GGUF_MAGIC:
            raise BadModelFile(f"{self.path}: not a GGUF file (magic {bytes(buf[:4])!r}, expected b'GGUF')")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        if version not in (2, 3):
            raise BadModelFile(f"{self.path}: GGUF version {version} is not supported (2 or 3)")
        pos = 24
        try:
            for _ in range(n_kv):
                key, pos = _read_str(buf, pos)
                (vtype,), pos = struct.unpack_from("<I", buf, pos), pos + 4
                self.metadata[key], pos = _read_value(buf, pos, vtype)
            raw_infos = []
            for _ in range(n_tensors):
                name, pos = _read_str(buf, pos)
                (n_dims,) = struct.unpack_from("<I", buf, pos)
                dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
                ggml_type, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
                pos += 4 + 8 * n_dims + 12
                raw_infos.append((name, tuple(reversed(dims)), ggml_type, offset))
        except (struct.error, UnicodeDecodeError, IndexError) as exc:
            raise BadModelFile(f"{self.path}: the GGUF header is cut off or corrupt ({exc})") from None
        alignment = int(self.metadata.get("general.alignment", DEFAULT_ALIGNMENT))
        data_start = (pos + alignment - 1) // alignment * alignment
        for name, shape, ggml_type, offset in raw_infos:
            nbytes = _tensor_nbytes(self.path, name, shape, ggml_type)
            info = TensorInfo(name, shape, ggml_type, data_start + offset, nbytes)
            if info.offset + nbytes > size:
                raise BadModelFile(
                    f"{self.path}: truncated GGUF: tensor {name!r} needs bytes up to {info.offset + nbytes:,} "
                    f"but the file has {size:,} bytes (an interrupted download?)"
                )
            self.tensors[name] = info

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes as a uint8 array, without copying (the map is copy-on-write, so torch may wrap it)."""
        info = self.tensors[name]
        return np.frombuffer(self._map, dtype=np.uint8, count=info.nbytes, offset=info.offset)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))


def _read_str(buf: mmap.mmap, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<Q", buf, pos)
    end = pos + 8 + n
    if end > len(buf):
        raise IndexError("string runs past the end of the file")
    return buf[pos + 8 : end].decode("utf-8", errors="replace"), end


def _read_value(buf: mmap.mmap, pos: int, vtype: int) -> tuple[Any, int]:
    if vtype == _STRING:
        return _read_str(buf, pos)
    if vtype in _SCALARS:
        fmt, _ = _SCALARS[vtype]
        return struct.unpack_from(fmt, buf, pos)[0], pos + struct.calcsize(fmt)
    if vtype == _ARRAY:
        etype, count = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        if etype in _SCALARS:
            dtype = np.dtype(_SCALARS[etype][1]).newbyteorder("<")
            end = pos + count * dtype.itemsize
            if end > len(buf):
                raise IndexError("array runs past the end of the file")
            return np.frombuffer(buf, dtype=dtype, count=count, offset=pos).tolist(), end
        if etype == _STRING:
            out = []
            unpack = struct.Struct("<Q").unpack_from
            for _ in range(count):
                (n,) = unpack(buf, pos)
                out.append(buf[pos + 8 : pos + 8 + n].decode("utf-8", errors="replace"))
                pos += 8 + n
            if pos > len(buf):
                raise IndexError("string array runs past the end of the file")
            return out, pos
        items = []
        for _ in range(count):
            item, pos = _read_value(buf, pos, etype)
            items.append(item)
        return items, pos
    raise struct.error(f"unknown GGUF value type {vtype}")


def _tensor_nbytes(path: Path, name: str, shape: tuple[int, ...], ggml_type: int) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise BadModelFile(f"{path}: tensor {name!r} has unknown ggml type {ggml_type}") from None
    n = int(np.prod(shape)) if shape else 1
    if shape and shape[-1] % block_size:
        raise BadModelFile(f"{path}: tensor {name!r} row of {shape[-1]} is not a multiple of its block size {block_size}")
    return n // block_size * type_size
