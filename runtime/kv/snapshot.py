"""A prefix's KV as a value: its tensors and the metadata that says what they are and what produced them.

Engines export one (`Engine.export_prefix`) and import one (`Engine.import_prefix`); `runtime/kv/file.py`
writes it as safetensors with this metadata in the header, `runtime/kv/codec.py` quantises it for the warm
and cold tiers. The metadata is enough to refuse a snapshot that does not fit the engine, with a reason.
"""

from __future__ import annotations

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
    tensors: dict[str, TensorInfo] = Field(default_factory=dict)  # filled when written to a file


@dataclass
class KVSnapshot:
    meta: KVMeta
    tensors: dict[str, torch.Tensor]  # decoded: contiguous, owning their memory, in their logical dtype
    shared: dict[str, Any] = field(default_factory=dict)  # engine-private live objects (V4 cache), never written

    @property
    def length(self) -> int:
        return self.meta.length

    @property
    def tokens(self) -> list[int]:
        return self.meta.tokens

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

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
