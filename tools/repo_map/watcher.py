"""Live file watching: one watchdog observer per repository, changes debounced and coalesced.

Raw events (often several per save, thousands on a checkout) go into a pending set. A batch is
processed once the tree has been quiet for `debounce_s`, or at the latest `max_delay_s` after its first
event, so a long burst still reports in bounded time. Processing re-checks each path against the work
tree (ignored, binary and symlinked files drop out; content equal to the cached hash is no change),
updates the tag cache for the files that really changed, and hands `on_change` a `Changes` with created,
modified and deleted paths. A rename arrives as the old path deleted and the new one created.

The context assembler uses the paths to decide from where its prompt prefix must be re-read
(`RepoContext.diverges_at` on a rebuilt block gives the exact offset).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..gitcmd import run_git
from ..listing import ALWAYS_SKIPPED
from .cache import TagCache
from .repomap import Changes, RepoMap

_registry_lock = threading.Lock()
_observers: dict[Path, tuple[Any, Any, set[Any]]] = {}  # root -> (observer, watch, handlers)


class RepoWatcher:
    def __init__(self, root: Path, on_change: Callable[[Changes], None], repo_map: RepoMap | None = None,
                 cache_dir: Path | None = None, debounce_s: float = 0.15, max_delay_s: float = 2.0) -> None:
        self.root = root.resolve()
        self.on_change = on_change
        self.repo_map = repo_map
        self._cache_dir = cache_dir
        self.debounce_s, self.max_delay_s = debounce_s, max_delay_s
        self._pending: set[str] = set()
        self._dirs: set[str] = set()  # directories created, moved or deleted: their contents need a look
        self._first_at = self._last_at = 0.0
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self._handler: Any = None
        self.batches = 0

    def start(self) -> RepoWatcher:
        if self.repo_map is None:
            self.repo_map = RepoMap(self.root, TagCache(self._cache_dir))
            self.repo_map.refresh()
        self._handler = _make_handler(self._event)
        _attach(self.root, self._handler)
        self._thread = threading.Thread(target=self._run, name=f"repo-watch {self.root.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._handler is not None:
            _detach(self.root, self._handler)
            self._handler = None
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> RepoWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is pending or being processed (tests, and callers about to rebuild)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._dirs or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # -- event side (watchdog's thread) --------------------------------------------------------------

    def _event(self, kind: str, path: str, is_dir: bool) -> None:
        rel = os.path.relpath(path, self.root)
        if rel.startswith("..") or rel == ".":
            return
        rel = rel.replace(os.sep, "/")
        if not ALWAYS_SKIPPED.isdisjoint(rel.split("/")):
            return
        now = time.monotonic()
        with self._cond:
            if not self._pending and not self._dirs:
                self._first_at = now
            self._last_at = now
            (self._dirs if is_dir else self._pending).add(rel)
            self._cond.notify_all()

    # -- batch side (our thread) ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._dirs) and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                while True:
                    now = time.monotonic()
                    deadline = min(self._last_at + self.debounce_s, self._first_at + self.max_delay_s)
                    if now >= deadline or self._stopped:
                        break
                    self._cond.wait(deadline - now)
                paths, dirs = self._pending, self._dirs
                self._pending, self._dirs = set(), set()
                self._busy = True
            changes = self._process(paths, dirs)
            self.batches += 1
            if changes:
                self.on_change(changes)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _process(self, paths: set[str], dirs: set[str]) -> Changes:
        assert self.repo_map is not None
        known = self.repo_map.files
        candidates = set(paths)
        for d in dirs:
            prefix = d + "/"
            candidates.update(p for p in known if p.startswith(prefix))
            if (self.root / d).is_dir():
                for base, subdirs, names in os.walk(self.root / d):
                    subdirs[:] = [s for s in subdirs if s not in ALWAYS_SKIPPED]
                    rel_base = Path(base).relative_to(self.root).as_posix()
                    candidates.update(f"{rel_base}/{n}" for n in names)
        new = sorted(p for p in candidates if p not in known and (self.root / p).exists())
        ignored = _ignored(self.root, new)
        return self.repo_map.update(p for p in candidates if p not in ignored)


def _ignored(root: Path, paths: list[str]) -> set[str]:
    """Which of these (new, untracked) paths git ignores; one `git check-ignore` per batch."""
    if not paths:
        return set()
    proc = run_git(root, "check-ignore", "-z", "--stdin",
                   input="\0".join(paths).encode("utf-8", "surrogateescape") + b"\0")
    if proc.returncode == 128:  # not a git repository: nothing is ignored by git
        return set()
    return {p for p in proc.text.split("\0") if p}


def _make_handler(callback: Callable[[str, str, bool], None]) -> Any:
    from watchdog.events import FileSystemEventHandler

    class Handler(FileSystemEventHandler):  # type: ignore[misc]
        def on_any_event(self, event: Any) -> None:
            if event.event_type in ("opened", "closed_no_write", "closed"):
                return
            callback(event.event_type, os.fsdecode(event.src_path), event.is_directory)
            if event.event_type == "moved":
                callback("created", os.fsdecode(event.dest_path), event.is_directory)

    return Handler()


def _attach(root: Path, handler: Any) -> None:
    with _registry_lock:
        if root in _observers:
            observer, watch, handlers = _observers[root]
            observer.add_handler_for_watch(handler, watch)
            handlers.add(handler)
            return
        from watchdog.observers import Observer

        observer = Observer()
        watch = observer.schedule(handler, str(root), recursive=True)
        observer.daemon = True
        observer.start()
        _observers[root] = (observer, watch, {handler})


def _detach(root: Path, handler: Any) -> None:
    with _registry_lock:
        observer, watch, handlers = _observers[root]
        handlers.discard(handler)
        if handlers:
            observer.remove_handler_for_watch(handler, watch)
            return
        del _observers[root]
    observer.stop()
    observer.join()
