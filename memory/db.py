"""Opening `memory.db`: pragmas, migrations, an integrity check, and SQLite's errors in the user's words."""

from __future__ import annotations

import fcntl
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from .schema import migrations
from .types import StoreUnavailable

MOVE_ASIDE = "move it aside to start an empty store, or restore it from a backup"


def connect(path: Path, busy_timeout_s: float) -> sqlite_utils.Database:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in MemoryStore.write);
    # check_same_thread=False: the UI and agent threads share the connection under the store's lock.
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    try:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreUnavailable(f"memory database {path} is unreadable ({exc}); {MOVE_ASIDE}") from None
    if mode != "wal":
        db.execute("PRAGMA journal_mode=WAL")
    # secure_delete: freed pages are zeroed, so a forgotten text does not survive in free pages.
    db.execute("PRAGMA secure_delete=ON")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA synchronous=NORMAL")
    # Two processes migrating a fresh file at once would deadlock on the lock upgrade; take turns.
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with translate_errors(path):
            migrations.apply(db)
            if db.execute("SELECT 1 FROM meta WHERE key = 'salt'").fetchone() is None:
                db.execute("INSERT INTO meta (key, value) VALUES ('salt', ?)", [secrets.token_hex(16)])
    problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    if problem != "ok":
        raise StoreUnavailable(f"memory database {path} is damaged ({problem}); {MOVE_ASIDE}")
    return db


@contextmanager
def translate_errors(path: Path) -> Iterator[None]:
    """SQLite's locked/corrupt errors become one clear line for the user; the transaction rolls back whole."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreUnavailable(f"memory database {path} is locked by another process; try again when it is "
                                   "done") from None
        raise
    except sqlite3.DatabaseError as exc:
        raise StoreUnavailable(f"memory database {path} is damaged ({exc}); {MOVE_ASIDE}") from None
