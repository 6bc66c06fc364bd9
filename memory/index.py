"""The LanceDB vector index: id, vector and filter columns only, never text.

Every hit is joined back to SQLite by the store, and only active items survive the join, so a stale row
here can cost a result slot but can never show a superseded or forgotten text. The index is a cache of
SQLite: a deleted or damaged directory is rebuilt from the items and the embedding cache.

Writers (add, delete, compaction with version cleanup) hold an exclusive file lock and readers a shared
one, because cleaning up old versions removes files that a reader of an old version would still open.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

TABLE = "items"
# Each add is one fragment; past this many, the next write compacts them so search stays fast at 10k items.
MAX_FRAGMENTS = 24


def quiet_lance() -> None:
    # Lance's Rust logging writes warnings to stderr, which would draw over a TUI.
    os.environ.setdefault("LANCEDB_LOG", "error")
    os.environ.setdefault("LANCE_LOG", "error")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def visibility_filter(repo_id: str | None, session_id: str | None) -> str:
    """The scopes one (repo, session) can see, as a Lance SQL filter on the filter columns."""
    parts = ["scope = 'user'"]
    if repo_id:
        parts.append(f"(scope = 'repo' AND owner = {_quote(repo_id)})")
    if session_id:
        parts.append(f"(scope = 'session' AND owner = {_quote(session_id)})")
    return " OR ".join(parts)


class VectorIndex:
    def __init__(self, path: Path, dim: int | None = None, model_id: str | None = None) -> None:
        """With `model_id` (and `dim`), an index built by another model is dropped on open; without, it is
        opened as it is (for purging)."""
        quiet_lance()
        import lancedb

        self.path = path
        self.dim = dim
        self.model_id = model_id
        path.mkdir(parents=True, exist_ok=True)
        self._lock_path = path.parent / (path.name + ".lock")
        # read_consistency_interval=0: every query sees other processes' latest commit.
        self._db = lancedb.connect(str(path), read_consistency_interval=timedelta(0))
        self._table: Any = None

    def locked(self) -> Any:
        """The exclusive writer lock, for callers that replace the whole directory."""
        return self._locked(True)

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield

    def _schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([
            pa.field("id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), self.dim)),
            pa.field("scope", pa.string()),
            pa.field("owner", pa.string()),
            pa.field("repo", pa.string()),
            pa.field("kind", pa.string()),
        ], metadata={"model_id": self.model_id})

    def _open(self, create: bool) -> Any:
        """The table, or None when it does not exist (yet, or any more) and `create` is False."""
        if TABLE not in self._db.list_tables().tables:
            if not create:
                return None
            self._db.create_table(TABLE, schema=self._schema(), exist_ok=True)
        table = self._db.open_table(TABLE)
        if self.model_id is None:
            return table
        meta = table.schema.metadata or {}
        if meta.get(b"model_id", b"").decode() != self.model_id or table.schema.field("vector").type.list_size != self.dim:
            # Vectors of another model are meaningless here: start over (SQLite still has everything).
            self._db.drop_table(TABLE)
            return self._open(create)
        return table

    def exists(self) -> bool:
        # A directory check, not a listing through LanceDB: this runs before every search.
        return (self.path / f"{TABLE}.lance" / "_versions").is_dir()

    def ids(self) -> set[str]:
        with self._locked(False):
            table = self._open(False)
            if table is None:
                return set()
            return set(table.to_arrow().column("id").to_pylist())

    def add(self, rows: list[dict[str, Any]], vectors: np.ndarray) -> None:
        import pyarrow as pa

        if not rows:
            return
        data = pa.table({
            "id": [r["id"] for r in rows],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype("float32").ravel()), self.dim),
            "scope": [r["scope"] for r in rows],
            "owner": [r["owner"] for r in rows],
            "repo": [r["repo_id"] for r in rows],
            "kind": [r["kind"] for r in rows],
        }, schema=self._schema())
        with self._locked(True):
            table = self._open(True)
            table.delete("id IN (" + ", ".join(_quote(r["id"]) for r in rows) + ")")
            table.add(data)
            if len(table.to_lance().get_fragments()) > MAX_FRAGMENTS:
                self._compact(table)

    def remove(self, ids: list[str], purge: bool) -> None:
        """Delete rows; with `purge`, rewrite every fragment that had a deletion and drop all old versions,
        so the vectors are gone from disk and from time travel, not only hidden."""
        with self._locked(True):
            table = self._open(False)
            if table is None:
                return
            if ids:
                table.delete("id IN (" + ", ".join(_quote(i) for i in ids) + ")")
            if purge:
                self._compact(table)

    @classmethod
    def purge(cls, path: Path, ids: list[str]) -> None:
        """Purging `remove` on whatever index is there, whichever model built it: forget works even when
        the embedding model cannot be loaded now."""
        cls(path).remove(ids, purge=True)

    def _compact(self, table: Any) -> None:
        dataset = table.to_lance()
        # threshold 0: a fragment with even one deleted row is rewritten (the default 10 % keeps the bytes).
        dataset.optimize.compact_files(materialize_deletions=True, materialize_deletions_threshold=0.0)
        dataset.cleanup_old_versions(older_than=timedelta(0), delete_unverified=True, error_if_tagged_old_versions=True)

    def search(self, vector: np.ndarray, where: str, limit: int) -> list[tuple[str, float]]:
        """(id, cosine distance) of the nearest rows that pass `where`, nearest first."""
        import lance

        with self._locked(False):
            if not self.exists():
                return []
            # Straight through pylance: LanceDB's query builder adds ~5 ms of thread hand-offs per query, and
            # opening the dataset (~0.1 ms) reads the latest version, so other processes' writes are seen.
            dataset = lance.dataset(str(self.path / f"{TABLE}.lance"))
            result = dataset.to_table(columns=["id", "_distance"], filter=where, prefilter=True,
                                      nearest={"column": "vector", "q": vector.astype("float32"), "k": limit,
                                               "metric": "cosine"})
        return list(zip(result.column("id").to_pylist(), result.column("_distance").to_pylist()))

    def versions(self) -> int:
        with self._locked(False):
            table = self._open(False)
            return 0 if table is None else len(table.list_versions())
