"""The engine-side hook of Engram KV: a `PrefixCache` the engine consults in `prefill` (under its lock) when
its own cache does not already hold the prompt's prefix, and saves to after a turn.

`memory.snapshots.SnapshotStore` implements it (SQLite records, files under `$DSV4_HOME/kv/`, a RAM tier).
Reuse is decided by comparing tokens: a hit is only used for the leading ids it shares with the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from .snapshot import KVSnapshot


class Provenance(BaseModel):
    """What a snapshot's token prefix contains, so forget and override can find every snapshot holding it."""

    files: dict[str, str] = Field(default_factory=dict)  # repository path -> content digest
    memory_ids: list[str] = Field(default_factory=list)
    turns: list[tuple[str, int, int]] = Field(default_factory=list)  # (session id, first turn, last turn)


@dataclass
class PrefixHit:
    snapshot: KVSnapshot
    tier: str  # where it came from: "ram-hot", "ram-warm", "disk-hot", "disk-cold"
    load_s: float  # reading, verifying and decoding it
    usable: int  # leading tokens of the query it may restore (llama: any block boundary; V4: its whole length)


@dataclass
class RestoreReport:
    """What the last prefill restored: the agent's report (`kv`, `timing`) reads this."""

    restored_tokens: int = 0
    tier: str = ""  # "" when nothing came from the prefix cache
    prefill_tokens: int = 0
    restore_s: float = 0.0
    refused: list[str] = field(default_factory=list)  # reasons snapshots were not used


class PrefixCache(Protocol):
    digest_cache: Path | None  # where model-file digests are cached (None: in memory only)

    def lookup(self, identity: str, ids: list[int], *, whole_only: bool,
               longer_than: int = 0) -> tuple[PrefixHit | None, list[str]]:
        """The snapshot of this model sharing the longest prefix with `ids`, if that is more than `longer_than`
        tokens (`whole_only`: only snapshots whose every token is a prefix of `ids`, the V4 case), and the
        reasons any candidates were refused (each refused record is removed)."""

    def save(self, snapshot: KVSnapshot, provenance: Provenance | None = None) -> str:
        """Store a snapshot; returns its id."""
