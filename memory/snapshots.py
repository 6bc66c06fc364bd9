"""The KV-snapshot index: which snapshot files exist and what their prefix covers.

The KV-tier code (runtime export/import, tiers, eviction) registers each snapshot here with its provenance:
the repository files (with content hashes), memory item ids and session turns its token prefix contains.
Override and forget use that provenance to delete every snapshot that still "remembers" an item, because
a model resumed from such a prefix would attend to the old text.
"""

from __future__ import annotations

import secrets
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite_utils

    from .store import MemoryStore


@dataclass
class Snapshot:
    id: str
    path: str
    tier: str  # hot | warm | cold
    model_key: str  # digest of the model identity (config, weights, tokenizer, runtime format, KV dtype)
    prefix_hash: str  # the prefix-chained hash of the token blocks it holds
    tokens: int
    bytes: int
    checksum: str
    created_at: str = ""
    last_used_at: str = ""
    files: dict[str, str] = field(default_factory=dict)  # repo path -> content hash
    memory_ids: list[str] = field(default_factory=list)
    turns: list[tuple[str, int, int]] = field(default_factory=list)  # (session id, first turn, last turn)


# The RAM tiers of this process (memory/kv_store.py), told when records are deleted so that a forgotten or
# overridden prefix does not stay in memory either
_ram_listeners: weakref.WeakSet[Any] = weakref.WeakSet()


def listen_for_deletions(listener: Any) -> None:
    """`listener.drop_from_ram(ids)` is called with the ids of every snapshot record this process deletes."""
    _ram_listeners.add(listener)


def register(store: MemoryStore, snap: Snapshot, blocks: list[str] | None = None) -> Snapshot:
    """Record a snapshot file and its provenance (replacing a record with the same id). `blocks`: the chained
    hashes of its full token blocks, block i (from 1) covering its first i blocks (longest-prefix lookup)."""
    from .types import now

    snap.id = snap.id or "kv-" + secrets.token_hex(8)
    snap.created_at = snap.created_at or now()
    snap.last_used_at = snap.last_used_at or snap.created_at
    with store.write() as db:
        db.execute("DELETE FROM kv_snapshots WHERE id = ?", [snap.id])
        db["kv_snapshots"].insert({k: getattr(snap, k) for k in ("id", "path", "tier", "model_key", "prefix_hash",
                                                                  "tokens", "bytes", "checksum", "created_at",
                                                                  "last_used_at")})
        db["kv_snapshot_files"].insert_all([{"snapshot_id": snap.id, "path": p, "content_hash": h}
                                            for p, h in snap.files.items()])
        db["kv_snapshot_memory"].insert_all([{"snapshot_id": snap.id, "item_id": i} for i in snap.memory_ids])
        db["kv_snapshot_turns"].insert_all([{"snapshot_id": snap.id, "session_id": s, "turn_from": a, "turn_to": b}
                                            for s, a, b in snap.turns])
        db["kv_snapshot_blocks"].insert_all([{"snapshot_id": snap.id, "block_index": i, "hash": h}
                                             for i, h in enumerate(blocks or [], start=1)])
    return snap


def _load(store: MemoryStore, rows: list[dict[str, Any]]) -> list[Snapshot]:
    out = []
    for row in rows:
        snap = Snapshot(**row)
        snap.files = {r["path"]: r["content_hash"] for r in
                      store.rows("SELECT path, content_hash FROM kv_snapshot_files WHERE snapshot_id = ?", [snap.id])}
        snap.memory_ids = [r["item_id"] for r in
                           store.rows("SELECT item_id FROM kv_snapshot_memory WHERE snapshot_id = ?", [snap.id])]
        snap.turns = [(r["session_id"], r["turn_from"], r["turn_to"]) for r in
                      store.rows("SELECT * FROM kv_snapshot_turns WHERE snapshot_id = ?", [snap.id])]
        out.append(snap)
    return out


def find(store: MemoryStore, model_key: str, prefix_hash: str) -> list[Snapshot]:
    return _load(store, store.rows("SELECT * FROM kv_snapshots WHERE model_key = ? AND prefix_hash = ?",
                                   [model_key, prefix_hash]))


def all_snapshots(store: MemoryStore) -> list[Snapshot]:
    return _load(store, store.rows("SELECT * FROM kv_snapshots ORDER BY created_at"))


def remove(store: MemoryStore, snapshot_ids: list[str]) -> int:
    """Delete snapshot records and their files (eviction, a corrupt file, a changed repository file);
    returns how many records existed."""
    if not snapshot_ids:
        return 0
    with store.write() as db:
        snaps = [(r[0], r[1]) for r in db.execute(
            f"SELECT id, path FROM kv_snapshots WHERE id IN ({','.join('?' * len(snapshot_ids))})", snapshot_ids)]
        unlink_files(snaps, store.home)
        delete_rows(db, snaps)
    return len(snaps)


def covering_files(db: sqlite_utils.Database, paths: list[str]) -> list[tuple[str, str]]:
    """Snapshots whose prefix holds one of these repository files (a changed file makes them stale)."""
    if not paths:
        return []
    marks = ",".join("?" * len(paths))
    return [(r[0], r[1]) for r in db.execute(
        f"SELECT DISTINCT s.id, s.path FROM kv_snapshots s JOIN kv_snapshot_files f ON f.snapshot_id = s.id "
        f"WHERE f.path IN ({marks})", paths)]


def covering(db: sqlite_utils.Database, item_ids: list[str]) -> list[tuple[str, str]]:
    """(snapshot id, path) of every snapshot whose prefix contains one of these memory items."""
    if not item_ids:
        return []
    marks = ",".join("?" * len(item_ids))
    return [(r[0], r[1]) for r in db.execute(
        f"SELECT DISTINCT s.id, s.path FROM kv_snapshots s JOIN kv_snapshot_memory m ON m.snapshot_id = s.id "
        f"WHERE m.item_id IN ({marks})", item_ids)]


def covering_turns(db: sqlite_utils.Database, session_ids: list[str]) -> list[tuple[str, str]]:
    """Snapshots whose prefix holds turns of these sessions (their logs were redacted, so their KV is stale)."""
    if not session_ids:
        return []
    marks = ",".join("?" * len(session_ids))
    return [(r[0], r[1]) for r in db.execute(
        f"SELECT DISTINCT s.id, s.path FROM kv_snapshots s JOIN kv_snapshot_turns t ON t.snapshot_id = s.id "
        f"WHERE t.session_id IN ({marks})", session_ids)]


def delete_rows(db: sqlite_utils.Database, snaps: list[tuple[str, str]]) -> None:
    for snapshot_id, _ in snaps:
        db.execute("DELETE FROM kv_snapshots WHERE id = ?", [snapshot_id])  # provenance and block rows cascade
    ids = [snapshot_id for snapshot_id, _ in snaps]
    for listener in list(_ram_listeners):
        listener.drop_from_ram(ids)


def unlink_files(snaps: list[tuple[str, str]], home: Path | None = None) -> None:
    """Paths are relative to `$DSV4_HOME` (`home`); absolute ones are used as they are.
    Called before the records' deletion commits: a crash in between leaves a record whose file is gone,
    which the KV tier treats as a miss; the other order could leave an unindexed file holding the text."""
    for _, path in snaps:
        (Path(home or ".") / path).unlink(missing_ok=True)
