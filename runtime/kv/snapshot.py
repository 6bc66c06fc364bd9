"""A prefix's KV as a value: its tensors and the metadata that says what they are and what produced them.

Engines export one (`Engine.export_prefix`) and import one (`Engine.import_prefix`); `runtime/kv/file.py`
writes it as safetensors with this metadata in the header, `runtime/kv/codec.py` quantises it for the warm
and cold tiers. The metadata is enough to refuse a snapshot that does not fit the engine, with a reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, Field

MAGIC = "dsv4-kv"
FORMAT_VERSION = 1  # bump when the tensor layout or the metadata changes; part of the model identity too
Tier = Literal["hot", "warm", "cold"]  # hot: the working dtype; warm: int8 blocks (RAM); cold: int4 blocks (disk)
TIERS: tuple[Tier, ...] = ("hot", "warm", "cold")


class SnapshotRefused(Exception):
    """A snapshot that must not be used (wrong model, broken invariant, corrupt file); `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TensorInfo(BaseModel):
    """How one tensor is stored in a file: its encoding, its logical dtype and shape, and a checksum per part."""

    encoding: Literal["exact", "int8", "int4"] = "exact"
    dtype: Literal["float32", "bfloat16", "float16", "int8", "uint8", "int64"]  # what decoding gives back
    shape: list[Annotated[int, Field(ge=0)]]
    block: int = Field(0, ge=0)  # quantisation block (elements along the flattened last dimension)
    compressed: bool = False  # int4 payload stored zlib-compressed
    checksums: dict[str, int] = Field(default_factory=dict)  # stored part name -> crc32 of its bytes


class KVMeta(BaseModel):
    magic: str = MAGIC
    format_version: int = FORMAT_VERSION
    architecture: str  # "llama" | "deepseek_v4"
    identity: str  # ModelIdentity.digest(): any mismatch with the engine is a refusal
    dtype: str  # the working dtype of the cache (hot tier)
    length: int  # tokens the snapshot holds
    tokens: list[int]
    tier: Tier = "hot"  # the encoding of its lossy tensors
    layout: dict[str, Any] = Field(default_factory=dict)  # engine-specific: window starts, ratios, ...
    lossy: list[str] = Field(default_factory=list)  # tensors the warm/cold tiers may quantise; the rest stay exact
    # per-tensor exceptions (of lossy tensors) to int8 warm / int4 cold, e.g. V4's windows exact warm, int8 cold;
    # the hot tier is always exact. A file without the field (older writers) reads as {}; decoding never
    # consults it (each stored tensor's encoding is in `tensors`)
    tier_encodings: dict[str, dict[Literal["warm", "cold"], Literal["exact", "int8", "int4"]]] = Field(default_factory=dict)
    tensors: dict[str, TensorInfo] = Field(default_factory=dict)  # filled when written to a file


# Writes tensor `name` (decoded) indexed by `index` into `out`; made only once everything that can fail is checked
Writer = Callable[[torch.Tensor, tuple], None]


class LazyTensors(Mapping[str, torch.Tensor]):
    """A tier's tensors decoded on first use (codec.EncodedSnapshot.decode): an import can write a warm tensor
    straight into the engine's cache (`writer`) instead of decoding it to a copy first."""

    def __init__(self, infos: dict[str, TensorInfo], decode: Callable[[str], torch.Tensor],
                 direct: Callable[[str], Writer | None]) -> None:
        self.infos = infos
        self._decode, self._direct = decode, direct
        self._decoded: dict[str, torch.Tensor] = {}

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._decoded:
            if name not in self.infos:
                raise KeyError(name)
            self._decoded[name] = self._decode(name)
        return self._decoded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.infos)

    def __len__(self) -> int:
        return len(self.infos)

    def writer(self, name: str) -> Writer:
        direct = None if name in self._decoded else self._direct(name)
        return direct or plain_writer(self[name])


def plain_writer(t: torch.Tensor) -> Writer:
    return lambda out, index: out.copy_(t[index])


@dataclass
class KVSnapshot:
    meta: KVMeta
    tensors: Mapping[str, torch.Tensor]  # decoded (maybe lazily): contiguous, owning their memory, logical dtype
    shared: dict[str, Any] = field(default_factory=dict)  # engine-private live objects (V4 cache), never written

    def describe(self, name: str) -> tuple[list[int], str] | None:
        """Shape and dtype of tensor `name` without decoding it; None when the snapshot has no such tensor."""
        if isinstance(self.tensors, LazyTensors):
            info = self.tensors.infos.get(name)
            return (list(info.shape), info.dtype) if info is not None else None
        t = self.tensors.get(name)
        return (list(t.shape), str(t.dtype).removeprefix("torch.")) if t is not None else None

    def writer(self, name: str) -> Writer:
        """A function writing `tensors[name][index]` into a destination; raises SnapshotRefused (a tensor that
        cannot be decoded) before it is returned, so the write itself cannot fail halfway."""
        if isinstance(self.tensors, LazyTensors):
            return self.tensors.writer(name)
        return plain_writer(self.tensors[name])

    @property
    def length(self) -> int:
        return self.meta.length

    @property
    def tokens(self) -> list[int]:
        return self.meta.tokens

    def nbytes(self) -> int:
        """Bytes of the decoded tensors (a lazy snapshot is not decoded to count them)."""
        total = 0
        for name in self.tensors:
            shape, dtype = self.describe(name)
            total += math.prod(shape) * getattr(torch, dtype).itemsize
        return total

    def check_identity(self, identity: str, architecture: str) -> None:
        meta = self.meta
        if meta.magic != MAGIC or meta.format_version != FORMAT_VERSION:
            raise SnapshotRefused(f"snapshot format {meta.magic!r} v{meta.format_version} is not {MAGIC!r} v{FORMAT_VERSION}")
        if meta.architecture != architecture:
            raise SnapshotRefused(f"snapshot is of a {meta.architecture} model, the engine runs {architecture}")
        if meta.identity != identity:
            raise SnapshotRefused("snapshot was made by a different model identity (weights, tokenizer, config, "
                                  "precision, KV dtype or runtime version differ)")
        if meta.length != len(meta.tokens) or meta.length <= 0:
            raise SnapshotRefused(f"snapshot length {meta.length} does not match its {len(meta.tokens)} token ids")


def contiguous_clone(t: torch.Tensor) -> torch.Tensor:
    """A tensor owning exactly its own bytes: a view would pin (and write out) the whole tensor it came from."""
    return t.detach().clone(memory_format=torch.contiguous_format)
