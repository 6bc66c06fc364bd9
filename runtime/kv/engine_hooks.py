"""What both engines share around their own `export_prefix` / `import_prefix`: the model identity, the
attached `PrefixCache`, restoring from it inside prefill, and `save_prefix` after a turn."""

from __future__ import annotations

import threading
import time
from typing import Any

from .identity import ModelIdentity
from .prefix_cache import PrefixCache, Provenance, RestoreReport
from .snapshot import KVSnapshot, SnapshotRefused


class PrefixCacheHooks:
    """Mixed into an engine that defines `export_prefix(n)`, `import_prefix(snapshot, limit=)`, `lock`,
    `identity_fields()` and `restore_whole_only` (True where the cache cannot be truncated: V4)."""

    prefix_cache: PrefixCache | None = None
    kv_report: RestoreReport = RestoreReport()
    restore_whole_only: bool = False
    lock: threading.Lock
    _identity: ModelIdentity | None = None

    def export_prefix(self, n_tokens: int) -> KVSnapshot: ...

    def import_prefix(self, snapshot: KVSnapshot, *, limit: int | None = None) -> int: ...

    def identity_fields(self, digest_cache: Any) -> ModelIdentity: ...

    def holds_prefix(self, ids: list[int]) -> bool:
        """Whether `export_prefix(len(ids))` would export exactly `ids` (called under the lock)."""
        ...

    def attach_prefix_cache(self, cache: PrefixCache | None) -> None:
        """Consult `cache` in prefill when the engine's own cache does not hold a prompt's prefix."""
        self.prefix_cache = cache

    def model_identity(self) -> ModelIdentity:
        if self._identity is None:
            cache = self.prefix_cache.digest_cache if self.prefix_cache is not None else None
            self._identity = self.identity_fields(cache)
        return self._identity

    def identity_digest(self) -> str:
        return self.model_identity().digest()

    def save_prefix(self, n_tokens: int, provenance: Provenance | None = None, *,
                    tokens: list[int] | None = None) -> str | None:
        """Snapshot the first `n_tokens` the cache holds into the prefix cache (the stable prefix after a turn;
        safe from a background thread: the export runs under the engine lock, the write outside it).
        `tokens`: the ids those positions must hold; when the cache has moved on (a later turn's prefill ran
        first) nothing is saved. Returns the snapshot id, or None (no prefix cache, or the cache moved on)."""
        if self.prefix_cache is None:
            return None
        with self.lock:
            if tokens is not None and (len(tokens) != n_tokens or not self.holds_prefix(tokens)):
                return None
            snap = self.export_prefix(n_tokens)
        return self.prefix_cache.save(snap, provenance)

    def restore_from_prefix_cache(self, ids: list[int], held: int) -> int:
        """Called by prefill (under the lock) when its own cache holds only `held` leading ids of `ids`:
        imports the longest usable snapshot that beats that. Returns the tokens the cache now holds."""
        report = RestoreReport()
        self.kv_report = report
        if self.prefix_cache is None:
            return held
        start = time.perf_counter()
        hit, report.refused = self.prefix_cache.lookup(self.identity_digest(), ids, whole_only=self.restore_whole_only,
                                                       longer_than=held)
        if hit is None or hit.usable <= held:
            return held
        try:
            n = self.import_prefix(hit.snapshot, limit=min(hit.usable, len(ids)))
        except SnapshotRefused as exc:
            report.refused.append(exc.reason)
            return held  # imports validate everything before they change the cache
        report.restored_tokens, report.tier = n, hit.tier
        report.restore_s = time.perf_counter() - start
        return n
