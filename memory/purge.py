"""Forget = purge. `forget` returns only when the item cannot be read back from anywhere we wrote it:

1. copies of the text kept by others (the agent's session log): `store.log_redactor`, when the opener
   wired one, gets one `Redaction` per item (its text, distinctive spans, and where it was written, so
   the user's sentence it was captured from goes too), replaces what it finds with a marker and says
   which sessions it touched; memory never opens another store's files (docs/architecture.md, "Ownership");
2. KV snapshots whose prefix covered the item (or a redacted turn): files unlinked, records deleted;
3. SQLite: item rows, FTS entries (deleted, then the FTS index optimised so no old segment keeps the
   terms), embedding-cache rows; `secure_delete` zeroes freed pages; WAL checkpointed with TRUNCATE;
4. LanceDB: rows deleted, fragments with deletions rewritten, every old version cleaned up;
5. this process's caches: query and slot vectors (they were computed from the texts).

A tombstone keeps id, time and reason only. It is written in step 3 with complete = 0 and completed after
step 4, so a crash in between is finished the next time the store opens. Steps 1-2 come first because
they need the text, which step 3 destroys.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import snapshots
from .indexing import cache_key
from .spans import memory_spans
from .types import PRECEDENCE, InvalidInput, Item, NotFound, StoreUnavailable, normalise_key, now
from .view import resolve

if TYPE_CHECKING:
    from .store import MemoryStore

CHECKPOINT_WAIT_S = 10.0



def marker(item_id: str) -> str:
    return f"[forgotten memory {item_id}]"


@dataclass(frozen=True)
class Redaction:
    """One forgotten item as the owner of other copies needs it: what to look for and where it came from."""

    item_id: str
    text: str
    spans: tuple[str, ...]  # the item's distinctive spans (memory/spans.py), longest first
    session_id: str  # the session it was written in ("" when none)
    turn: int | None
    captured: bool  # captured from the user's message of that turn: that sentence is its source

    @property
    def marker(self) -> str:
        return marker(self.item_id)


def redaction(item: Item) -> Redaction:
    return Redaction(item_id=item.id, text=item.text, spans=tuple(memory_spans(item.text)), session_id=item.session_id,
                     turn=item.turn, captured=item.actor == "capture")


# Replaces what each redaction names with its marker wherever the owner keeps copies; returns the number of
# records changed and the sessions they belong to (their KV snapshots are dropped too).
LogRedactor = Callable[[list[Redaction]], tuple[int, list[str]]]


# Copies a forget cannot remove, said in its reply rather than silently kept.
UNREACHABLE = ("your files and their git history", "checkpoints of your files kept for undo ($DSV4_HOME/checkpoints)",
               "anything outside $DSV4_HOME (terminal scrollback, a --patch-out file, a remote server's logs)")


@dataclass
class Forgotten:
    ids: list[str]
    snapshots_deleted: int
    events_redacted: int
    unreachable: tuple[str, ...] = UNREACHABLE

    def reply(self) -> str:
        """What a front end tells the user: what was purged, and what a forget cannot reach."""
        return (f"forgot {', '.join(self.ids)}: purged from the memory store and its index, {self.events_redacted} "
                f"session-log record(s) redacted (the sentences it came from and every copy of its distinctive text), "
                f"{self.snapshots_deleted} KV snapshot(s) deleted. Not reached: {'; '.join(self.unreachable)}.")


def forget(store: MemoryStore, *, item_id: str | None, key: str | None, scope: str | None, repo_id: str | None,
           session_id: str | None, reason: str, ids: list[str] | None) -> Forgotten:
    with store.sync_lock():
        targets = _targets(store, item_id, key, scope, repo_id, session_id, ids)
        target_ids = [t.id for t in targets]
        redacted, sessions = (store.log_redactor([redaction(t) for t in targets])
                              if store.log_redactor is not None else (0, []))
        models = [r["model"] for r in store.rows("SELECT DISTINCT model FROM embed_cache")]
        cache_keys = [cache_key(store, m, t.text) for m in models for t in targets]
        with store.write() as db:
            snaps = sorted(set(snapshots.covering(db, target_ids) + snapshots.covering_turns(db, sessions)))
            snapshots.unlink_files(snaps, store.home)
            snapshots.delete_rows(db, snaps)
            stamp = now()
            for target in targets:
                db.execute("DELETE FROM items WHERE id = ?", [target.id])  # the FTS trigger deletes its entry
                db.execute("INSERT OR REPLACE INTO tombstones (id, forgotten_at, reason, complete) VALUES (?, ?, ?, 0)",
                           [target.id, stamp, reason])
            for h in cache_keys:
                db.execute("DELETE FROM embed_cache WHERE hash = ?", [h])
            # A deleted FTS5 row only adds a delete marker; the old segment keeps the terms until a merge.
            db.execute("INSERT INTO items_fts (items_fts) VALUES ('optimize')")
        with store.write_lock():
            checkpoint(store.db.conn, store.db_path)
        store._query_vectors.clear()
        store._slot_vectors.clear()  # slot strings hold the value words of forgotten preferences
        _purge_index(store, target_ids)
    return Forgotten(ids=target_ids, snapshots_deleted=len(snaps), events_redacted=redacted)


def _targets(store: MemoryStore, item_id: str | None, key: str | None, scope: str | None, repo_id: str | None,
             session_id: str | None, ids: list[str] | None) -> list[Item]:
    if ids:
        return _with_ancestors(store, [store.get(i) for i in ids])
    if item_id is not None:
        return _with_ancestors(store, [store.get(item_id)])
    if key is None:
        raise InvalidInput("say what to forget: an id, a key, or ids confirmed from a recall")
    key = normalise_key(key)
    history = store.history(key, repo_id, session_id)  # type: ignore[arg-type]
    if scope is not None:
        owner = store.owner(scope, repo_id, session_id)
        chosen = [i for i in history if i.scope == scope and i.owner == owner]
        if not chosen:
            elsewhere = sorted({i.scope for i in history})
            hint = f"; it exists in {', '.join(elsewhere)} scope (use --scope {elsewhere[0]})" if elsewhere else ""
            raise NotFound(f"no {scope}-scope memory with key {key!r}{hint}")
        return chosen
    if not history:
        raise NotFound(f"no memory with key {key!r} here (dsv4-code memory list shows the keys)")
    effective = resolve(history)[0]
    winner_scope = effective[0].scope if effective else max((i.scope for i in history), key=PRECEDENCE.__getitem__)
    return [i for i in history if i.scope == winner_scope]


def _with_ancestors(store: MemoryStore, items: list[Item]) -> list[Item]:
    """The items and every earlier value they superseded (forgetting a value forgets its history too)."""
    seen = {i.id: i for i in items}
    frontier = list(seen)
    while frontier:
        rows = store.rows(f"SELECT * FROM items WHERE superseded_by IN ({','.join('?' * len(frontier))})", frontier)
        frontier = []
        for row in rows:
            if row["id"] not in seen:
                seen[row["id"]] = Item.from_row(row)
                frontier.append(row["id"])
    return list(seen.values())


def checkpoint(conn: sqlite3.Connection, path: Path) -> None:
    """Move the WAL into the database and truncate it; the old page images in the WAL hold the text."""
    deadline = time.monotonic() + CHECKPOINT_WAIT_S
    while True:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return
        if time.monotonic() > deadline:
            raise StoreUnavailable(f"could not checkpoint {path}: another process keeps a read transaction open; "
                                   "the forget is not complete, run it again when that process is idle")
        time.sleep(0.05)


def _purge_index(store: MemoryStore, ids: list[str]) -> None:
    from .index import VectorIndex

    if store.lance_path.exists():
        VectorIndex.purge(store.lance_path, ids)
    with store.write() as db:
        db.execute(f"UPDATE tombstones SET complete = 1 WHERE id IN ({','.join('?' * len(ids))})", ids)
    with store.write_lock():
        checkpoint(store.db.conn, store.db_path)


def finish_incomplete(store: MemoryStore) -> None:
    """Finish forgets that a crash interrupted after SQLite was purged (their index part)."""
    pending = [r["id"] for r in store.rows("SELECT id FROM tombstones WHERE complete = 0")]
    if pending:
        with store.sync_lock():
            _purge_index(store, pending)
