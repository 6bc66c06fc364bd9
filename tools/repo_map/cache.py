"""Tag cache in SQLite: `<cache_dir>/tags.sqlite`; the agent passes `$DSV4_HOME/repomap` (tools/ must not
import agent/, so the directory is always the caller's choice; None keeps the cache in memory).

Tags are stored per content hash (and language and extractor version), so a file that moves, or is the
same in two worktrees, is parsed once. A second table remembers, per repository root and path, the size,
mtime and hash last seen, so a warm build hashes nothing whose stat is unchanged.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from .tags import TAGS_VERSION, FileTags

SCHEMA = """
CREATE TABLE IF NOT EXISTS tags (
    digest TEXT NOT NULL, language TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (digest, language, version)
);
CREATE TABLE IF NOT EXISTS stats (
    root TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL, PRIMARY KEY (root, path)
);
"""


def content_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class TagCache:
    """Thread-safe: the watcher thread writes while the main thread reads."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.path: Path | None = None
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            self.path = cache_dir / "tags.sqlite"
        self._db = sqlite3.connect(self.path or ":memory:", check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A lost cache write costs one re-parse; no need to wait for the disk on every batch.
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def stats(self, root: Path) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, digest) as last recorded for this root."""
        with self._lock:
            rows = self._db.execute("SELECT path, size, mtime_ns, digest FROM stats WHERE root = ?", (str(root),))
            return {path: (size, mtime, digest) for path, size, mtime, digest in rows}

    def load(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], FileTags]:
        """Cached tags for (digest, language) pairs; missing pairs are simply absent."""
        wanted = set(keys)
        if not wanted:
            return {}
        found: dict[tuple[str, str], FileTags] = {}
        with self._lock:
            # A temporary table join beats thousands of point queries on a warm build.
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (digest TEXT, language TEXT)")
            self._db.execute("DELETE FROM wanted")
            self._db.executemany("INSERT INTO wanted VALUES (?, ?)", wanted)
            rows = self._db.execute(
                "SELECT t.digest, t.language, t.payload FROM wanted w JOIN tags t "
                "ON t.digest = w.digest AND t.language = w.language AND t.version = ?", (TAGS_VERSION,)).fetchall()
        for digest, language, payload in rows:
            found[(digest, language)] = FileTags.from_json(payload)
        return found

    def store(self, root: Path, entries: Iterable[tuple[str, int, int, str, FileTags | None]]) -> None:
        """Record (path, size, mtime_ns, digest, tags-or-None-when-already-cached) in one transaction."""
        stat_rows, tag_rows = [], []
        for path, size, mtime_ns, digest, tags in entries:
            stat_rows.append((str(root), path, size, mtime_ns, digest))
            if tags is not None:
                tag_rows.append((digest, tags.language, TAGS_VERSION, tags.to_json()))
        if not stat_rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO stats VALUES (?, ?, ?, ?, ?)", stat_rows)
            self._db.executemany("INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?)", tag_rows)
            self._db.execute("COMMIT")

    def forget_paths(self, root: Path, paths: Iterable[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM stats WHERE root = ? AND path = ?", [(str(root), p) for p in paths])

    def prune(self) -> int:
        """Drop tags no recorded path points at any more; returns how many went."""
        with self._lock:
            cur = self._db.execute("DELETE FROM tags WHERE digest NOT IN (SELECT digest FROM stats)")
            return cur.rowcount
