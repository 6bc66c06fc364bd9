"""The live state of one repository's map: scanned files, their tags, and the ranking built on them.

`refresh()` brings everything in line with the work tree (cold: parse all; warm: stat, then load from
the cache), `update(paths)` does the same for a few paths (the watcher's batch), re-parsing only files
whose content changed and reusing the previous syntax tree where one is kept (incremental re-parse).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..repo_scan import DEFAULT_MAX_FILE_BYTES, RepoScan, ScannedFile, language_of, scan_repo, skip_reason_by_content, skip_reason_by_name
from .cache import TagCache, content_digest
from .languages import has_grammar
from .rank import GraphIndex, RankedDefs, Ranking, rank
from .render import MapRenderer
from .tags import FileTags, IncrementalParser, extract_tags


@dataclass
class RefreshStats:
    files: int = 0
    parsed: int = 0
    from_cache: int = 0
    seconds: float = 0.0


@dataclass
class MapText:
    text: str
    tokens: int
    defs_shown: int
    defs_total: int
    files_shown: int


@dataclass
class Changes:
    created: set[str] = field(default_factory=set)
    modified: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)

    @property
    def paths(self) -> set[str]:
        return self.created | self.modified | self.deleted

    def __bool__(self) -> bool:
        return bool(self.created or self.modified or self.deleted)


class RepoMap:
    def __init__(self, root: Path, cache: TagCache | None = None, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.root = root.resolve()
        self.cache = cache or TagCache(None)
        self.max_file_bytes = max_file_bytes
        self.files: dict[str, ScannedFile] = {}
        self.skipped: list[tuple[str, str]] = []
        self.tags: dict[str, FileTags] = {}
        self._digests: dict[str, str] = {}
        self._lines: dict[str, list[str]] = {}
        self._rankings: dict[tuple[frozenset[str], frozenset[str]], Ranking] = {}
        self._parser = IncrementalParser()
        self._index = GraphIndex()
        self._lock = threading.RLock()

    # -- keeping in line with the work tree -------------------------------------------------------

    def refresh(self, scan: RepoScan | None = None, on_progress: Callable[[int, int], None] | None = None) -> RefreshStats:
        """`on_progress(done, total)`: files with tags so far, of those with a grammar (after the cache, per parse)."""
        started = time.perf_counter()
        scan = scan or scan_repo(self.root, self.max_file_bytes)
        known = self.cache.stats(self.root)
        wanted: dict[str, ScannedFile] = {}
        digests: dict[str, str] = {}
        pending: list[tuple[ScannedFile, bytes]] = []
        for f in scan.files:
            if not has_grammar(f.language) or f.oversized:
                continue
            wanted[f.path] = f
            seen = known.get(f.path)
            if seen and seen[0] == f.size and seen[1] == f.mtime_ns:
                digests[f.path] = seen[2]
            else:
                data = (self.root / f.path).read_bytes()
                digests[f.path] = content_digest(data)
                pending.append((f, data))
        cached = self.cache.load((digests[p], f.language or "") for p, f in wanted.items())
        tags: dict[str, FileTags] = {}
        to_store: list[tuple[str, int, int, str, FileTags | None]] = []
        parsed = 0
        for path, f in wanted.items():
            hit = cached.get((digests[path], f.language or ""))
            if hit is not None:
                tags[path] = hit
        if on_progress is not None:
            on_progress(len(tags), len(wanted))
        for f, data in pending:
            hit = tags.get(f.path)
            if hit is None:
                hit = extract_tags(data, f.language or "")
                tags[f.path] = hit
                parsed += 1
                if on_progress is not None:
                    on_progress(len(tags), len(wanted))
                to_store.append((f.path, f.size, f.mtime_ns, digests[f.path], hit))
            else:
                to_store.append((f.path, f.size, f.mtime_ns, digests[f.path], None))
        for path, f in wanted.items():
            if path not in tags:  # stat matched but the cached tags are gone (pruned, version bump)
                data = (self.root / path).read_bytes()
                tags[path] = extract_tags(data, f.language or "")
                parsed += 1
                to_store.append((path, f.size, f.mtime_ns, digests[path], tags[path]))
        self.cache.store(self.root, to_store)
        gone = set(known) - set(wanted)
        if gone:
            self.cache.forget_paths(self.root, gone)
        with self._lock:
            self.files = {f.path: f for f in scan.files}
            self.skipped = scan.skipped
            self.tags, self._digests = tags, digests
            self._lines.clear()
            self._rankings.clear()
        return RefreshStats(files=len(scan.files), parsed=parsed, from_cache=len(tags) - parsed,
                            seconds=time.perf_counter() - started)

    def update(self, paths: Iterable[str]) -> Changes:
        """Re-check these repo-relative paths; returns which really changed (content, not just mtime)."""
        changes = Changes()
        stores: list[tuple[str, int, int, str, FileTags | None]] = []
        for path in sorted(set(paths)):
            abs_path = self.root / path
            known = path in self.files
            if skip_reason_by_name(path) or abs_path.is_symlink() or not abs_path.is_file():
                if known:
                    self._drop(path)
                    changes.deleted.add(path)
                continue
            data = abs_path.read_bytes()
            if skip_reason_by_content(data[:8192]):
                if known:
                    self._drop(path)
                    changes.deleted.add(path)
                continue
            info = abs_path.stat()
            digest = content_digest(data)
            language = language_of(path)
            entry = ScannedFile(path, info.st_size, info.st_mtime_ns, language, info.st_size > self.max_file_bytes)
            if known and self._digests.get(path) == digest:
                self.files[path] = entry
                continue
            (changes.modified if known else changes.created).add(path)
            with self._lock:
                self.files[path] = entry
                self._lines.pop(path, None)
                self._rankings.clear()
                self._digests[path] = digest
                if has_grammar(language) and not entry.oversized:
                    self.tags[path] = self._parser.tags(path, data, language or "")
                    stores.append((path, entry.size, entry.mtime_ns, digest, self.tags[path]))
                else:
                    self.tags.pop(path, None)
        self.cache.store(self.root, stores)
        if changes.deleted:
            self.cache.forget_paths(self.root, changes.deleted)
        return changes

    def _drop(self, path: str) -> None:
        with self._lock:
            self.files.pop(path, None)
            self.tags.pop(path, None)
            self._digests.pop(path, None)
            self._lines.pop(path, None)
            self._rankings.clear()
            self._index.forget(path)
        self._parser.forget(path)

    # -- ranking and rendering ----------------------------------------------------------------------

    def ranking(self, mentioned_files: Iterable[str] = (), mentioned_idents: Iterable[str] = ()) -> Ranking:
        key = (frozenset(mentioned_files), frozenset(mentioned_idents))
        with self._lock:
            if key not in self._rankings:
                self._rankings[key] = rank(self.files, self.tags, key[0], key[1], self._index)
            return self._rankings[key]

    def lines(self, path: str) -> list[str]:
        with self._lock:
            if path not in self._lines:
                self._lines[path] = (self.root / path).read_bytes().decode("utf-8", "replace").splitlines()
            return self._lines[path]

    def render(self, budget: int, count_tokens: Callable[[str], int], mentioned_files: Iterable[str] = (),
               mentioned_idents: Iterable[str] = (), exclude: Iterable[str] = ()) -> MapText:
        ranking = self.ranking(mentioned_files, mentioned_idents)
        skip = set(exclude)
        defs = ranking.defs
        if skip:
            defs = defs.excluding(skip) if isinstance(defs, RankedDefs) else [d for d in defs if d[1] not in skip]
        text, shown, tokens = MapRenderer(self.lines).fit(defs, budget, count_tokens)
        files_shown = len({path for _, path, _ in defs[:shown]})
        return MapText(text, tokens, shown, len(defs), files_shown)
