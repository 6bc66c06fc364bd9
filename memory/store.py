"""MemoryStore: the one object the agent, CLI and tools use. SQLite (`memory.db`) is the truth.

Writes take SQLite's write lock up front (BEGIN IMMEDIATE), so two processes remembering the same key
serialise: the second one supersedes the first one's item, and a unique index on active keys makes a
second active value impossible even for code that forgets to check.
"""

from __future__ import annotations

import fcntl
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from . import db as db_mod
from . import purge, snapshots
from . import recall as recall_mod
from .embed import Embedder, LazyEmbedder
from .types import KINDS, SCOPES, InvalidInput, Item, MemoryBlock, NotFound, RecallResult, Tombstone, normalise_key, now
from .view import build_block, estimate_tokens, resolve

MAX_TEXT = 4000
DEFAULT_BUDGET = 2000  # tokens for the whole memory block


def new_id() -> str:
    return "m-" + secrets.token_hex(6)


@dataclass
class Remembered:
    item: Item
    superseded: Item | None = None
    unchanged: bool = False  # the same key already held exactly this text


class MemoryStore:
    def __init__(self, home: Path, embedder: Embedder | LazyEmbedder | None, budget_tokens: int,
                 busy_timeout_s: float = 10.0) -> None:
        self.home = home
        self.dir = home / "memory"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.dir / "memory.db"
        self.lance_path = self.dir / "index"
        self.budget_tokens = budget_tokens
        self.busy_timeout_s = busy_timeout_s  # how long a write waits for another process's write lock
        self.embedder = embedder
        self._lock = threading.RLock()  # one connection, shared by the UI and agent threads
        self._index: Any = None
        self._query_vectors: dict[str, Any] = {}
        # Who else keeps copies of memory text (the agent's session log), so a forget reaches them too.
        self.log_redactor: purge.LogRedactor | None = None
        self.db = self._connect()
        self.salt = bytes.fromhex(self.rows("SELECT value FROM meta WHERE key = 'salt'")[0]["value"])

    @classmethod
    def open(cls, home: Path, embedder: Embedder | LazyEmbedder | None | str = "auto",
             budget_tokens: int = DEFAULT_BUDGET, busy_timeout_s: float = 10.0,
             log_redactor: purge.LogRedactor | None = None) -> MemoryStore:
        """Open (creating and migrating) the store under `home` (normally `dsv4_home()`).

        embedder: "auto" loads all-MiniLM-L6-v2 on a background thread; an Embedder instance (e.g.
        HashingEmbedder) is used as is; None means full-text recall only. log_redactor: what a forget
        calls to redact the text where others keep it (the agent passes `SessionStore.redact`).
        """
        if embedder == "auto":
            embedder = LazyEmbedder()
        store = cls(home, embedder, budget_tokens, busy_timeout_s)  # type: ignore[arg-type]
        store.log_redactor = log_redactor
        purge.finish_incomplete(store)
        return store

    def _connect(self) -> sqlite_utils.Database:
        return db_mod.connect(self.db_path, self.busy_timeout_s)

    def _translate(self) -> Any:
        return db_mod.translate_errors(self.db_path)

    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        with self._lock, self._translate():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """This process's hold on the connection without a transaction (for checkpoints)."""
        with self._lock, self._translate():
            yield

    @contextmanager
    def sync_lock(self) -> Iterator[None]:
        """Across processes: forget's purge and the index's catch-up never interleave."""
        with self._lock, open(self.dir / "sync.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def rows(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock, self._translate():
            cursor = self.db.conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor]

    # --- writing ---------------------------------------------------------------------------------------

    def remember(self, text: str, *, key: str | None = None, scope: str = "repo", kind: str = "fact",
                 pin: bool = False, supersedes: str | None = None, repo_id: str | None = None,
                 session_id: str | None = None, turn: int | None = None, actor: str = "user") -> Remembered:
        """Store a memory. With `key`: supersede the active item of that key in that scope. Without a key:
        add, or supersede the item `supersedes` names (it must be active and in the same scope)."""
        text = text.strip()
        if not text:
            raise InvalidInput("the memory text is empty")
        if len(text) > MAX_TEXT:
            raise InvalidInput(f"the memory text is {len(text)} characters; memories are at most {MAX_TEXT}")
        if kind not in KINDS:
            raise InvalidInput(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        key = normalise_key(key)
        owner = self.owner(scope, repo_id, session_id)
        with self.write() as db:
            old = None
            if supersedes is not None:
                old = self._get(supersedes)
                if old.status != "active":
                    raise InvalidInput(f"{supersedes} is already superseded by {old.superseded_by}; supersede that one")
                if (old.scope, old.owner) != (scope, owner):
                    raise InvalidInput(f"{supersedes} is a {old.scope}-scope memory; a {scope}-scope memory cannot "
                                       "replace it (use the same scope, or forget it)")
                if key is not None and old.key is not None and key != old.key:
                    raise InvalidInput(f"{supersedes} has key {old.key!r}, not {key!r}")
                key = key or old.key
            if key is not None:
                found = db.execute("SELECT id FROM items WHERE status = 'active' AND scope = ? AND owner = ? AND key = ?",
                                   [scope, owner, key]).fetchone()
                keyed = self._get(found[0]) if found else None
                if old is not None and keyed is not None and keyed.id != old.id:
                    raise InvalidInput(f"key {key!r} is held by {keyed.id}, not {supersedes}")
                old = keyed
            if old is not None and old.text == text and old.kind == kind:
                if pin and not old.pinned:
                    self._set_pinned(old, True, repo_id, session_id)
                    old.pinned = True
                return Remembered(item=old, unchanged=True)
            item = Item(id=new_id(), scope=scope, owner=owner, repo_id=repo_id or "", key=key, text=text, kind=kind,
                        pinned=pin or bool(old and old.pinned), status="active", created_at=now(),
                        session_id=session_id or "", turn=turn, actor=actor)
            if old is not None:
                # Free the key before the new row claims it (the unique index allows one active item per key).
                db.execute("UPDATE items SET status = 'superseded', superseded_by = ?, superseded_at = ? WHERE id = ?",
                           [item.id, item.created_at, old.id])
            row = item.to_json()
            row.pop("seq")
            db["items"].insert(row)
            item.seq = db.execute("SELECT seq FROM items WHERE id = ?", [item.id]).fetchone()[0]
            if item.pinned:
                self._check_pinned_budget(repo_id, session_id, item)
            # A KV snapshot whose prefix holds the old value would bring it back on resume: drop it.
            stale = snapshots.covering(db, [old.id]) if old is not None else []
            snapshots.unlink_files(stale)
            snapshots.delete_rows(db, stale)
        if old is not None:
            old.status, old.superseded_by, old.superseded_at = "superseded", item.id, item.created_at
        return Remembered(item=item, superseded=old)

    def capture(self, message: str, *, repo_id: str | None, session_id: str | None,
                turn: int | None = None) -> list[Remembered]:
        """Remember the explicit preference statements of one user message (see capture.py) as keyed
        preferences; the caller shows the result to the user (new, replacing, or already known)."""
        from .capture import capture_preferences

        return [self.remember(c.text, key=c.key, scope=c.scope, kind=c.kind, repo_id=repo_id, session_id=session_id,
                              turn=turn, actor="capture")
                for c in capture_preferences(message)
                if (c.scope != "repo" or repo_id) and (c.scope != "session" or session_id)]

    def pin(self, item_id: str, repo_id: str | None = None, session_id: str | None = None) -> Item:
        """Pin an active item: always in context. Refused (PinnedOverBudget) when the pinned set would not fit."""
        with self.write():
            item = self._active(item_id)
            self._set_pinned(item, True, repo_id or item.repo_id, session_id or item.session_id)
        item.pinned = True
        return item

    def unpin(self, item_id: str) -> Item:
        with self.write():
            item = self._active(item_id)
            self.db.execute("UPDATE items SET pinned = 0 WHERE id = ?", [item_id])
        item.pinned = False
        return item

    def _set_pinned(self, item: Item, pinned: bool, repo_id: str | None, session_id: str | None) -> None:
        self.db.execute("UPDATE items SET pinned = ? WHERE id = ?", [int(pinned), item.id])
        item.pinned = pinned
        if pinned:
            self._check_pinned_budget(repo_id, session_id, item)

    def _check_pinned_budget(self, repo_id: str | None, session_id: str | None, item: Item) -> None:
        # Inside the write transaction: raising rolls the pin back. Check the view of the item's own context.
        repo = repo_id or (item.owner if item.scope == "repo" else item.repo_id) or None
        session = session_id or (item.owner if item.scope == "session" else None)
        build_block([i for i in self.visible(repo, session) if i.pinned], self.budget_tokens)

    def forget(self, item_id: str | None = None, *, key: str | None = None, scope: str | None = None,
               repo_id: str | None = None, session_id: str | None = None, reason: str = "forgotten by the user",
               ids: list[str] | None = None) -> purge.Forgotten:
        """Purge a memory everywhere it can be read back (see memory/purge.py); returns when that is done.
        Forgetting an item also forgets the earlier values it superseded; `key` forgets every value of that key."""
        return purge.forget(self, item_id=item_id, key=key, scope=scope, repo_id=repo_id, session_id=session_id,
                            reason=reason, ids=ids)

    # --- reading ---------------------------------------------------------------------------------------

    def owner(self, scope: str, repo_id: str | None, session_id: str | None) -> str:
        if scope not in SCOPES:
            raise InvalidInput(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
        if scope == "repo" and not repo_id:
            raise InvalidInput("a repo-scope memory needs a repository (run inside one, or use --scope user)")
        if scope == "session" and not session_id:
            raise InvalidInput("a session-scope memory needs a session (this repository has none yet)")
        return {"user": "", "repo": repo_id, "session": session_id}[scope]  # type: ignore[return-value]

    def _get(self, item_id: str) -> Item:
        rows = list(self.db.query("SELECT * FROM items WHERE id = ?", [item_id]))
        if not rows:
            tomb = list(self.db.query("SELECT forgotten_at FROM tombstones WHERE id = ?", [item_id]))
            if tomb:
                raise NotFound(f"{item_id} was forgotten at {tomb[0]['forgotten_at'][:19].replace('T', ' ')} UTC")
            raise NotFound(f"no memory {item_id!r} (dsv4-code memory list shows the ids)")
        return Item.from_row(rows[0])

    def _active(self, item_id: str) -> Item:
        item = self._get(item_id)
        if item.status != "active":
            raise InvalidInput(f"{item_id} was superseded by {item.superseded_by}; use that one")
        return item

    def get(self, item_id: str) -> Item:
        with self._lock, self._translate():
            return self._get(item_id)

    def visible(self, repo_id: str | None, session_id: str | None, include_superseded: bool = False) -> list[Item]:
        """Items of the user scope, this repo and this session, in write order (before precedence)."""
        sql = "SELECT * FROM items WHERE (scope = 'user' OR (scope = 'repo' AND owner = ?) OR (scope = 'session' AND owner = ?))"
        if not include_superseded:
            sql += " AND status = 'active'"
        return [Item.from_row(r) for r in self.rows(sql + " ORDER BY seq", [repo_id or "", session_id or ""])]

    def list(self, repo_id: str | None = None, session_id: str | None = None, scope: str | None = None,
             include_superseded: bool = False) -> list[Item]:
        items = self.visible(repo_id, session_id, include_superseded)
        return [i for i in items if scope is None or i.scope == scope]

    def effective(self, repo_id: str | None, session_id: str | None) -> list[Item]:
        """Active items after precedence: what a (repo, session) currently believes."""
        return sorted(resolve(self.visible(repo_id, session_id))[0], key=lambda i: i.seq)

    def current_view(self, repo_id: str | None, session_id: str | None, budget_tokens: int | None = None,
                     count_tokens: Any = estimate_tokens, query: str | None = None) -> MemoryBlock:
        """The memory block for the model's context (`.text`), exactly; raises PinnedOverBudget when the pinned
        items alone do not fit. With `query`, unpinned items most relevant to it get the room first."""
        ranked = [i.id for i in self.recall(query, repo_id=repo_id, session_id=session_id, k=50).items] if query else None
        return build_block(self.visible(repo_id, session_id), budget_tokens or self.budget_tokens, count_tokens,
                           ranked)

    def recall(self, query: str, *, repo_id: str | None = None, session_id: str | None = None, k: int = 8,
               scope: str | None = None) -> RecallResult:
        """Hybrid search (FTS5 + vectors, fused by reciprocal rank) over active, visible, non-shadowed items."""
        return recall_mod.recall(self, query, repo_id=repo_id, session_id=session_id, k=k, scope=scope)

    def history(self, key: str, repo_id: str | None = None, session_id: str | None = None,
                scope: str | None = None) -> list[Item]:
        """Every value the key has had in the visible scopes (superseded ones until they are forgotten)."""
        key = normalise_key(key)
        return [i for i in self.visible(repo_id, session_id, include_superseded=True)
                if i.key == key and (scope is None or i.scope == scope)]

    def tombstones(self) -> list[Tombstone]:
        return [Tombstone(id=r["id"], forgotten_at=r["forgotten_at"], reason=r["reason"], complete=bool(r["complete"]))
                for r in self.rows("SELECT * FROM tombstones ORDER BY forgotten_at")]

    def export(self) -> dict[str, Any]:
        """Everything the store holds, as one JSON-able document (all scopes, superseded values, tombstones)."""
        items = [Item.from_row(r).to_json() for r in self.rows("SELECT * FROM items ORDER BY seq")]
        return {"format": "dsv4-memory-export", "version": 1, "exported_at": now(), "items": items,
                "tombstones": [t.__dict__ for t in self.tombstones()]}

    def warm_up(self) -> None:
        """Start loading the embedder in the background (call at startup; the UI thread never waits)."""
        if isinstance(self.embedder, LazyEmbedder):
            self.embedder.start()

    def close(self) -> None:
        with self._lock:
            self.db.close()
