"""SnapshotStore: the Engram KV store behind the runtime's `PrefixCache` hook.

Files under `$DSV4_HOME/kv/<model>/` (paths recorded relative to `$DSV4_HOME`), one SQLite record each in
`memory.db` with its provenance and one row per token block (`kv_chain`). Tiers and their byte caps:
- hot: the working dtype, in RAM (the latest snapshots saved or loaded in this process);
- warm: int8 with per-block scales, in RAM: hot entries past the hot cap are demoted here, the oldest first;
- disk: every snapshot has a file, lossless (`disk_tier="hot"`, the default) or int4 blocks compressed
  (`disk_tier="cold"`), least recently used evicted past the disk cap.
Loading verifies the file's checksums; a corrupt, truncated or missing file is a miss with a reason and its
record is removed. Reuse is decided by comparing tokens: a hit whose tokens differ from the prompt's is refused.
Two processes share the store safely: records change in SQLite transactions, files are written atomically
under unique names, and the sweep only removes files without a record that are older than a grace period.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..runtime.kv.codec import EncodedSnapshot
from ..runtime.kv.file import read_snapshot, write_snapshot
from ..runtime.kv.prefix_cache import PrefixHit, Provenance
from ..runtime.kv.snapshot import KVSnapshot, SnapshotRefused
from . import kv_admin, kv_chain, snapshots
from .snapshots import Snapshot
from .types import now

if TYPE_CHECKING:
    from .store import MemoryStore

MiB = 1 << 20
SUFFIX = ".safetensors"


class TierCaps(BaseModel):
    """Byte budgets per tier (`kv_hot_ram_mb`, `kv_warm_ram_mb`, `kv_disk_mb` in config, in MiB there)."""

    hot_ram: int = 512 * MiB
    warm_ram: int = 512 * MiB
    disk: int = 8192 * MiB


class SnapshotStore:
    def __init__(self, memory: MemoryStore, *, caps: TierCaps | None = None, disk_tier: str = "hot",
                 sweep_grace_s: float = 600.0) -> None:
        if disk_tier not in ("hot", "cold"):
            raise ValueError(f"disk_tier must be 'hot' (lossless) or 'cold' (int4), not {disk_tier!r}")
        self.memory = memory
        self.home = memory.home
        self.dir = self.home / "kv"
        self.digest_cache: Path | None = self.dir / "digests.json"
        self.caps = caps or TierCaps()
        self.disk_tier = disk_tier
        self.sweep_grace_s = sweep_grace_s
        self.ram: OrderedDict[str, EncodedSnapshot] = OrderedDict()  # id -> hot or warm form, oldest first
        self._lock = threading.Lock()
        snapshots.listen_for_deletions(self)

    # --- the PrefixCache protocol ------------------------------------------------------------------

    def save(self, snapshot: KVSnapshot, provenance: Provenance | None = None) -> str:
        meta = snapshot.meta
        provenance = provenance or Provenance()
        snap_id = "kv-" + secrets.token_hex(8)
        rel = Path("kv") / meta.identity[:16] / f"{snap_id}{SUFFIX}"
        digest = write_snapshot(self.home / rel, EncodedSnapshot(snapshot, self.disk_tier))
        blocks = kv_chain.block_hashes(meta.identity, meta.tokens)
        record = Snapshot(id=snap_id, path=rel.as_posix(), tier=self.disk_tier, model_key=meta.identity,
                          prefix_hash=kv_chain.prefix_hash(meta.identity, meta.tokens, meta.length, blocks),
                          tokens=meta.length, bytes=(self.home / rel).stat().st_size, checksum=digest,
                          files=dict(provenance.files), memory_ids=list(provenance.memory_ids),
                          turns=[tuple(t) for t in provenance.turns])
        snapshots.register(self.memory, record, blocks)
        self.ram_put(snap_id, EncodedSnapshot(snapshot, "hot"))
        # A llama cache restores any prefix: shorter snapshots are redundant. A V4 one restores whole, so only a
        # snapshot of exactly these tokens is (another session saved the same system prefix).
        covered = self.candidates(meta.identity, meta.tokens, blocks, True, 0)
        snapshots.remove(self.memory, [r["id"] for r, usable in covered if r["id"] != snap_id and r["tier"] == self.disk_tier
                                       and (meta.architecture != "deepseek_v4" or usable == meta.length)])
        self.fit_disk()
        return snap_id

    def lookup(self, identity: str, ids: list[int], *, whole_only: bool,
               longer_than: int = 0) -> tuple[PrefixHit | None, list[str]]:
        refused: list[str] = []
        blocks = kv_chain.block_hashes(identity, ids)
        for record, usable in self.candidates(identity, ids, blocks, whole_only, longer_than):
            start = time.perf_counter()
            try:
                snap, tier = self.load(record)
                if snap.meta.identity != identity or snap.tokens[:usable] != ids[:usable]:
                    raise SnapshotRefused(f"{Path(record['path']).name} does not hold the prompt's tokens")
            except SnapshotRefused as exc:
                refused.append(exc.reason)
                snapshots.remove(self.memory, [record["id"]])
                continue
            with self.memory.write() as db:
                db.execute("UPDATE kv_snapshots SET last_used_at = ? WHERE id = ?", [now(), record["id"]])
            return PrefixHit(snapshot=snap, tier=tier, load_s=time.perf_counter() - start, usable=usable), refused
        return None, refused

    # --- lookup ---------------------------------------------------------------------------------------

    def candidates(self, identity: str, ids: list[int], blocks: list[str], whole_only: bool,
                   longer_than: int) -> list[tuple[dict[str, Any], int]]:
        """Records of this model sharing a prefix with `ids`, with how many leading ids each may restore,
        longest first (llama: any block boundary of a snapshot, or all of it; V4: all of it or nothing)."""
        B = kv_chain.BLOCK_TOKENS
        rows = self.memory.rows(
            f"SELECT s.*, MAX(b.block_index) AS matched FROM kv_snapshot_blocks b JOIN kv_snapshots s "
            f"ON s.id = b.snapshot_id WHERE s.model_key = ? AND b.hash IN ({','.join('?' * len(blocks))}) "
            f"GROUP BY s.id", [identity, *blocks]) if blocks else []
        rows += self.memory.rows("SELECT s.*, 0 AS matched FROM kv_snapshots s WHERE s.model_key = ? AND s.tokens < ?",
                                 [identity, B])
        out = []
        for row in rows:
            matched = row.pop("matched")
            whole = row["tokens"] <= len(ids) and kv_chain.prefix_hash(identity, ids, row["tokens"], blocks) == row["prefix_hash"]
            usable = row["tokens"] if whole else 0 if whole_only else matched * B
            if usable > longer_than:
                out.append((row, usable))
        ram_first = {snap_id: i for i, snap_id in enumerate(reversed(self.ram))}
        out.sort(key=lambda ru: (-ru[1], ram_first.get(ru[0]["id"], len(ram_first))))
        return out

    def load(self, record: dict[str, Any]) -> tuple[KVSnapshot, str]:
        with self._lock:
            enc = self.ram.get(record["id"])
            if enc is not None:
                self.ram.move_to_end(record["id"])
        if enc is not None:
            return enc.decode(), f"ram-{enc.meta.tier}"
        enc = read_snapshot(self.home / record["path"], expect_digest=record["checksum"])
        if enc.meta.tier == "hot":  # free to keep (no copy); a cold file's decode is lossy, so it stays on disk
            self.ram_put(record["id"], enc)
        return enc.decode(), f"disk-{enc.meta.tier}"

    # --- tiers and caps ---------------------------------------------------------------------------------

    def ram_put(self, snap_id: str, enc: EncodedSnapshot) -> None:
        with self._lock:
            self.ram[snap_id] = enc
            self.ram.move_to_end(snap_id)
            self._fit_ram()

    def _fit_ram(self) -> None:
        """Demote the oldest hot entries to warm past the hot cap; drop the oldest warm ones past the warm cap
        (their files stay on disk)."""
        hot = [i for i, e in self.ram.items() if e.meta.tier == "hot"]
        total = sum(self.ram[i].nbytes() for i in hot)
        for snap_id in hot:
            if total <= self.caps.hot_ram:
                break
            enc = self.ram[snap_id]
            total -= enc.nbytes()
            self.ram[snap_id] = EncodedSnapshot(enc.decode(), "warm")
        warm = [i for i, e in self.ram.items() if e.meta.tier == "warm"]
        total = sum(self.ram[i].nbytes() for i in warm)
        for snap_id in warm:
            if total <= self.caps.warm_ram:
                break
            total -= self.ram.pop(snap_id).nbytes()

    def forget_files(self, paths: list[str]) -> int:
        """Delete the snapshots whose prefix holds one of these repository files (the watcher saw them change:
        their KV would show the model the old text); returns how many."""
        with self.memory.write() as db:
            stale = snapshots.covering_files(db, paths)
            snapshots.unlink_files(stale, self.home)
            snapshots.delete_rows(db, stale)
        return len(stale)

    def drop_from_ram(self, snapshot_ids: list[str]) -> None:
        with self._lock:
            for snap_id in snapshot_ids:
                self.ram.pop(snap_id, None)

    def fit_disk(self) -> int:
        """Evict the least recently used snapshots past the disk cap; returns how many."""
        rows = self.memory.rows("SELECT id, bytes FROM kv_snapshots ORDER BY last_used_at DESC")
        total, evict = 0, []
        for row in rows:
            total += row["bytes"]
            if total > self.caps.disk:
                evict.append(row["id"])
        return snapshots.remove(self.memory, evict)

    # --- management (the torch-free parts are memory/kv_admin.py, which `dsv4-code kv` uses) ------------

    def sweep(self) -> int:
        return kv_admin.sweep(self.memory, self.sweep_grace_s)

    def clear(self) -> int:
        """Delete every snapshot (records, files, RAM copies); returns how many records there were."""
        n = kv_admin.clear(self.memory)
        self.drop_from_ram(list(self.ram))
        return n

    def stats(self) -> dict[str, Any]:
        with self._lock:
            ram = {tier: [e for e in self.ram.values() if e.meta.tier == tier] for tier in ("hot", "warm")}
        return {**kv_admin.disk_stats(self.memory), "caps": self.caps.model_dump(),
                "ram": {tier: {"snapshots": len(es), "bytes": sum(e.nbytes() for e in es)} for tier, es in ram.items()}}
