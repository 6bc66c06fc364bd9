"""Engram KV in a session (issue 15): the in-process engine restores prompt prefixes from the snapshot store
under `$DSV4_HOME/kv/` and saves them after each turn, so a compaction, a resume or tomorrow's session in the
same repository does not prefill the repository block again.

- `open_session_kv` opens the store (tier caps from config), attaches it to the engine and sweeps orphan files;
  backends without an in-process engine (HTTP, scripted) get None: their servers cache prompts themselves.
- After each turn the last request's prompt is snapshotted in a background thread (never blocking a turn; a
  failure is a logged warning): the whole prompt, and for V4, whose cache cannot be cut, the end of the system
  message and tools on its own. Provenance (repository files, memory ids, session turns) lets forget and a
  changed file delete every snapshot holding the old text.
- Reuse is decided by comparing tokens (the engine's lookup); changed files only drive eviction.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .events import AgentEvent, KVRestore
from .report import KVReport, TimingReport

if TYPE_CHECKING:
    from ..memory.kv_store import SnapshotStore
    from ..memory.store import MemoryStore
    from ..runtime.engine.protocol import Engine
    from ..runtime.kv.prefix_cache import PrefixCache, Provenance
    from ..tools.repo_map import RepoContext
    from .backends.inprocess import PromptPrefix
    from .config import Settings

log = logging.getLogger(__name__)
MiB = 1 << 20


@runtime_checkable
class KVBackend(Protocol):
    """A backend with an in-process engine whose prompt prefixes can be snapshotted (agent/backends/inprocess.py)."""

    engine: Engine
    on_prefill: Callable[[KVRestore], None] | None
    last_prompt: PromptPrefix | None

    def attach_snapshot_store(self, store: PrefixCache | None) -> None: ...


def file_digests(repository: RepoContext) -> dict[str, str]:
    """Repository files the system message holds -> a digest of their content (whole files) or of their stat
    (files only in the map, whose definitions it shows): the provenance changed files are matched against."""
    out: dict[str, str] = {}
    for rel in repository.included_whole:
        path = repository.root / rel
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    for rel in repository.map_only:
        path = repository.root / rel
        out.setdefault(rel, f"stat:{path.stat().st_size}:{path.stat().st_mtime_ns}" if path.is_file() else "")
    return out


def open_session_kv(backend: Any, memory: MemoryStore, settings: Settings, session_id: str,
                    repository: RepoContext, memory_ids: Callable[[], list[str]],
                    emit: Callable[[AgentEvent], None]) -> SessionKV | None:
    """The session's Engram KV, or None for a backend without an in-process engine or with `kv_snapshots` off."""
    if not isinstance(backend, KVBackend):
        return None
    if not settings.kv_snapshots:
        backend.attach_snapshot_store(None)
        return None
    from ..memory.kv_store import SnapshotStore, TierCaps

    caps = TierCaps(hot_ram=settings.kv_hot_ram_mb * MiB, warm_ram=settings.kv_warm_ram_mb * MiB,
                    disk=settings.kv_disk_mb * MiB)
    store = SnapshotStore(memory, caps=caps, disk_tier=settings.kv_disk_tier)
    return SessionKV(backend, store, session_id, file_digests(repository), memory_ids, emit)


class SessionKV:
    def __init__(self, backend: KVBackend, store: SnapshotStore, session_id: str, files: dict[str, str],
                 memory_ids: Callable[[], list[str]], emit: Callable[[AgentEvent], None]) -> None:
        self.backend, self.store, self.session_id = backend, store, session_id
        self.files = files
        self.memory_ids = memory_ids
        self.memory_ids_at_start = memory_ids()
        self.emit = emit
        self.requests: list[KVRestore] = []  # every in-process request since the session opened here
        self.saved: list[str] = []  # snapshot ids this session wrote
        self.system_ids: list[int] | None = None  # the V4 system prefix already saved by this session
        self.turn_snapshot: str | None = None  # the latest whole-prompt snapshot (V4 keeps only that one)
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kv-save")
        self._pending: list[Future[None]] = []
        self.last_error: str | None = None  # why the latest save failed (also logged)
        self._lock = threading.Lock()
        backend.on_prefill = self.prefilled
        backend.attach_snapshot_store(store)
        self.store.sweep()
        self.store.fit_disk()

    # --- while a turn runs ----------------------------------------------------------------------------

    def prefilled(self, use: KVRestore) -> None:
        """Called by the backend after each request's prefill, on the turn's thread."""
        self.requests.append(use)
        for reason in use.refused:
            log.warning("KV snapshot not used, the prefix is re-read: %s", reason)
        if use.restored_tokens or use.refused:
            self.emit(use)

    # --- after a turn -------------------------------------------------------------------------------------

    def after_turn(self, turn: int, files_changed: list[str]) -> None:
        """Evict snapshots holding files this turn changed, then snapshot the turn's last prompt in the background."""
        if files_changed:
            self.forget_files(files_changed)
        prompt = self.backend.last_prompt
        if prompt is None:
            return
        with self._lock:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._saver.submit(self._save_logged, prompt, turn))

    def _save_logged(self, prompt: PromptPrefix, turn: int) -> None:
        try:
            self.save(prompt, turn)
        except Exception as exc:  # a background thread's boundary: a snapshot not saved costs a re-read, nothing else
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("KV snapshot of turn %d not saved: %s", turn, self.last_error)

    def provenance(self, turn: int | None) -> Provenance:
        from ..runtime.kv.prefix_cache import Provenance

        memory_ids = sorted(set(self.memory_ids_at_start) | set(self.memory_ids()))
        turns = [(self.session_id, 1, turn)] if turn is not None else []
        return Provenance(files=self.files, memory_ids=memory_ids, turns=turns)

    def save(self, prompt: PromptPrefix, turn: int) -> None:
        """Snapshot `prompt` (and, for V4, its system prefix) if the engine still holds it."""
        engine = self.backend.engine
        if engine.restore_whole_only and 0 < prompt.system_end < len(prompt.ids):
            system = prompt.ids[: prompt.system_end]
            if system != self.system_ids:
                saved = engine.save_prefix(len(system), self.provenance(None), tokens=system)
                if saved is not None:
                    self.saved.append(saved)
                    self.system_ids = system
        saved = engine.save_prefix(len(prompt.ids), self.provenance(turn), tokens=prompt.ids)
        if saved is None:
            return  # the next turn's prefill ran first; its own snapshot follows
        self.saved.append(saved)
        if engine.restore_whole_only and self.turn_snapshot is not None:
            self.remove([self.turn_snapshot])  # a llama store drops shorter prefixes itself
        self.turn_snapshot = saved

    def flush(self) -> None:
        """Wait for the snapshots being saved."""
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def remove(self, ids: list[str]) -> None:
        from ..memory import snapshots

        snapshots.remove(self.store.memory, ids)

    # --- changes and forgets ----------------------------------------------------------------------------

    def forget_files(self, paths: list[str]) -> int:
        """Delete the snapshots holding these repository files (they changed); returns how many."""
        n = self.store.forget_files(paths)
        if n:
            log.info("KV: %d snapshot(s) holding %s evicted", n, ", ".join(paths[:5]))
        return n

    def after_forget(self) -> None:
        """A forget purged the store: a save in flight may have written the forgotten text after the purge, so
        every snapshot this session wrote goes (the next turn saves the rebuilt context again)."""
        self.flush()
        with self._lock:
            ids, self.saved = self.saved, []
            self.system_ids, self.turn_snapshot = None, None
            self.memory_ids_at_start = self.memory_ids()  # the rebuilt system message's
        self.remove(ids)

    # --- what it did ----------------------------------------------------------------------------------

    def report(self) -> tuple[KVReport, TimingReport]:
        """The headless report's `kv` and `timing` over the requests since the session opened in this process."""
        uses = self.requests
        tiers = [u.tier for u in uses if u.tier]
        kv = KVReport(restored_tokens=sum(u.restored_tokens for u in uses), tier=tiers[0] if tiers else "",
                      prefill_tokens=sum(u.prefill_tokens for u in uses),
                      reused_tokens=sum(u.reused_tokens for u in uses),
                      refused=[r for u in uses for r in u.refused], snapshots_saved=len(self.saved))
        timing = TimingReport(first_token_s=round(uses[0].first_token_s, 4) if uses else None,
                              restore_s=round(sum(u.restore_s for u in uses), 4),
                              prefill_s=round(sum(u.prefill_s for u in uses), 4))
        return kv, timing

    def close(self) -> None:
        """Finish the saves (a headless run ends right after its turn) and sweep files without records."""
        self.flush()
        self._saver.shutdown(wait=True)
        self.backend.attach_snapshot_store(None)
        self.backend.on_prefill = None
        self.store.sweep()
