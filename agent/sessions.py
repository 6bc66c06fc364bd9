"""Sessions in `$DSV4_HOME/sessions.db`: a row per session and an append-only event log.

Every completed step (a user message, an assistant reply, one tool result, a file change) is one
committed row, written in WAL mode, so a killed process loses at most the step in flight. Resume
rebuilds the message list from the log. This module owns the file and its schema, redaction included
(`SessionStore.redact`, which a memory forget calls): nothing else opens it (docs/architecture.md, "Ownership").
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils
from sqlite_utils import Migrations

from ..home import dsv4_home
from .messages import Message
from .redact import redact, redact_data

if TYPE_CHECKING:
    from ..memory.purge import Redaction
    from .log_redaction import Needles

SESSIONS_FILE = "sessions.db"

migrations = Migrations("dsv4.sessions")


@migrations()
def m001_sessions(db: sqlite_utils.Database) -> None:
    db["sessions"].create(
        {"id": str, "repo_id": str, "repo_root": str, "title": str, "model": str,
         "created_at": str, "updated_at": str, "status": str},
        pk="id",
    )
    db["sessions"].create_index(["repo_id", "updated_at"])
    db["events"].create(
        {"id": int, "session_id": str, "turn": int, "kind": str, "payload": str, "created_at": str},
        pk="id", foreign_keys=[("session_id", "sessions", "id")],
    )
    db["events"].create_index(["session_id", "id"])


class SessionNotFound(Exception):
    pass


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class SessionInfo:
    id: str
    repo_id: str
    repo_root: str
    title: str
    model: str
    created_at: str
    updated_at: str
    status: str
    turns: int = 0


class SessionStore:
    @classmethod
    def open_default(cls) -> SessionStore:
        """The store of this user: `$DSV4_HOME/sessions.db`."""
        return cls(dsv4_home() / SESSIONS_FILE)

    @staticmethod
    def default_exists() -> bool:
        return (dsv4_home() / SESSIONS_FILE).exists()

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # One store serves the UI thread and the agent's worker threads; the lock keeps their statements apart.
        self.db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=False, timeout=10))
        self.lock = threading.RLock()
        self.db.execute("PRAGMA busy_timeout=10000")
        if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # Two processes opening a fresh database would each try to migrate and deadlock on the upgrade to a
        # write lock (SQLite answers that with an immediate "locked", not a wait), so migrations take turns.
        with open(path.with_name(path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            migrations.apply(self.db)

    def create(self, repo_id: str, repo_root: Path, model: str) -> str:
        session_id = now()[:10].replace("-", "") + "-" + uuid.uuid4().hex[:8]
        stamp = now()
        with self.lock, self.db.conn:
            self.db["sessions"].insert({"id": session_id, "repo_id": repo_id, "repo_root": str(repo_root), "title": "",
                                        "model": model, "created_at": stamp, "updated_at": stamp, "status": "active"})
        return session_id

    def append(self, session_id: str, turn: int, kind: str, payload: dict[str, Any]) -> int:
        """Log one event; returns its id (ids grow with time, so the View can name a point in the log)."""
        stamp = now()
        with self.lock, self.db.conn:
            # the one redaction point for the log: no secret value from the environment is ever stored
            table = self.db["events"].insert({"session_id": session_id, "turn": turn, "kind": kind,
                                              "payload": json.dumps(redact_data(payload), ensure_ascii=False),
                                              "created_at": stamp})
            self.db["sessions"].update(session_id, {"updated_at": stamp})
            return int(table.last_pk)

    def append_message(self, session_id: str, turn: int, message: Message) -> int:
        event_id = self.append(session_id, turn, "message", message.model_dump(exclude_none=True))
        if message.role == "user" and message.content:
            with self.lock:
                row = self.db["sessions"].get(session_id)
            if not row["title"]:
                with self.lock, self.db.conn:
                    self.db["sessions"].update(session_id, {"title": redact(message.content.strip().splitlines()[0][:80])})
        return event_id

    def set_status(self, session_id: str, status: str) -> None:
        with self.lock, self.db.conn:
            self.db["sessions"].update(session_id, {"status": status, "updated_at": now()})

    def get(self, session_id: str) -> SessionInfo:
        with self.lock:
            rows = list(self.db.query("select * from sessions where id = ?", [session_id]))
        if not rows:
            raise SessionNotFound(f"no session {session_id!r}")
        return self._info(rows[0])

    def list(self, repo_id: str) -> list[SessionInfo]:
        with self.lock:
            rows = list(self.db.query("select * from sessions where repo_id = ? order by updated_at desc, id desc", [repo_id]))
        return [self._info(row) for row in rows]

    def latest(self, repo_id: str) -> SessionInfo | None:
        sessions = self.list(repo_id)
        return sessions[0] if sessions else None

    def events(self, session_id: str, kind: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        """The session's events in order; `after`: only those with a larger id (what was logged since)."""
        sql = "select id, turn, kind, payload, created_at from events where session_id = ? and id > ?"
        params: list[Any] = [session_id, after]
        if kind is not None:
            sql += " and kind = ?"
            params.append(kind)
        with self.lock:
            rows = list(self.db.query(sql + " order by id", params))
        return [{"id": r["id"], "turn": r["turn"], "kind": r["kind"], "payload": json.loads(r["payload"]),
                 "created_at": r["created_at"]} for r in rows]

    def rewrite_event(self, session_id: str, event_id: int, payload: dict[str, Any]) -> None:
        """Replace one event's payload in place, leaving no readable copy of the old one (secure delete, WAL
        checkpointed): only for a compaction whose summary was made from text a forget redacted."""
        from ..memory.purge import checkpoint

        with self.lock:
            self.db.execute("PRAGMA secure_delete=ON")
            with self.db.conn:
                self.db.execute("UPDATE events SET payload = ? WHERE id = ? AND session_id = ?",
                                [json.dumps(payload, ensure_ascii=False), event_id, session_id])
            checkpoint(self.db.conn, self.path)

    def messages(self, session_id: str) -> list[Message]:
        """The conversation as logged; tool calls whose result was never logged (a killed process) get one that says so."""
        from .view import answered

        return answered([Message.model_validate(e["payload"]) for e in self.events(session_id, "message")])

    def turns(self, session_id: str) -> int:
        with self.lock:
            row = next(self.db.query("select max(turn) as t from events where session_id = ?", [session_id]))
        return row["t"] or 0

    def _info(self, row: dict[str, Any]) -> SessionInfo:
        info = SessionInfo(**row)
        info.turns = self.turns(info.id)
        return info

    def redact(self, redactions: list[Redaction], items: list[Needles] | None = None) -> tuple[int, list[str]]:
        """Remove forgotten memories from every logged event and session title, in place, so none of it can be
        read back (secure delete, WAL truncated): each item's distinctive spans wherever they occur (any
        escaping, case or normal form) and the user's sentence it was captured from, each replaced by the
        item's marker (agent/log_redaction.py). `items`: `needles(redactions)` when the caller has them.
        Returns the rows changed and the sessions touched."""
        from ..memory.purge import checkpoint
        from .log_redaction import scrub_payload, scrub_title

        items = items if items is not None else self.needles(redactions)
        changed = 0
        sessions: set[str] = set()
        with self.lock:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("BEGIN IMMEDIATE")
            for row_id, session, payload in conn.execute("SELECT id, session_id, payload FROM events").fetchall():
                scrubbed = scrub_payload(payload, items)
                if scrubbed is not None:
                    conn.execute("UPDATE events SET payload = ? WHERE id = ?", [scrubbed, row_id])
                    sessions.add(session)
                    changed += 1
            for session, title in conn.execute("SELECT id, title FROM sessions").fetchall():
                redacted = scrub_title(title, items)
                if redacted != title:
                    conn.execute("UPDATE sessions SET title = ? WHERE id = ?", [redacted, session])
                    sessions.add(session)
                    changed += 1
            conn.execute("COMMIT")
            checkpoint(conn, self.path)
            conn.close()
        return changed, sorted(sessions)

    def needles(self, redactions: list[Redaction]) -> list[Needles]:
        """What to look for per forgotten item: its spans and, for a captured one, the sentences of the user's
        message it was captured from."""
        from .log_redaction import needles

        return [needles(r, self._source_messages(r)) for r in redactions]

    def _source_messages(self, redaction: Redaction) -> list[str]:
        """The user messages of the turn a captured item came from."""
        if not redaction.captured or not redaction.session_id or redaction.turn is None:
            return []
        with self.lock:
            rows = self.db.execute("SELECT payload FROM events WHERE session_id = ? AND turn = ? AND kind = 'message'",
                                   [redaction.session_id, redaction.turn]).fetchall()
        messages = [json.loads(payload) for (payload,) in rows]
        return [m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]

    def close(self) -> None:
        self.db.close()
