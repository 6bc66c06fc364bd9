"""Managing the KV snapshot store without the runtime (no torch): the sweep of files without records,
clearing, and what the store holds per tier (`dsv4-code kv list | stats | clear`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import snapshots

if TYPE_CHECKING:
    from .store import MemoryStore

KEEP = ("digests.json", "digests.json.lock")


def sweep(memory: MemoryStore, grace_s: float) -> int:
    """Delete files under `$DSV4_HOME/kv/` that no record names (a crash between a file's write and its
    record, a temp file), once older than `grace_s` (another process may be about to record it);
    returns how many."""
    root = memory.home / "kv"
    if not root.is_dir():
        return 0
    named = {r["path"] for r in memory.rows("SELECT path FROM kv_snapshots")}
    cutoff = time.time() - grace_s
    removed = 0
    for path in root.rglob("*"):
        if not path.is_file() or path.name in KEEP:
            continue
        if path.relative_to(memory.home).as_posix() not in named and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def clear(memory: MemoryStore) -> int:
    """Delete every snapshot record and its file; returns how many records there were."""
    return snapshots.remove(memory, [r["id"] for r in memory.rows("SELECT id FROM kv_snapshots")])


def disk_stats(memory: MemoryStore) -> dict[str, Any]:
    rows = memory.rows("SELECT tier, COUNT(*) AS snapshots, COALESCE(SUM(bytes), 0) AS bytes, "
                       "COALESCE(SUM(tokens), 0) AS tokens FROM kv_snapshots GROUP BY tier")
    return {"dir": str(memory.home / "kv"),
            "disk": {r["tier"]: {k: r[k] for k in ("snapshots", "bytes", "tokens")} for r in rows}}
