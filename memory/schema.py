"""The SQLite schema of `$DSV4_HOME/memory/memory.db`, the source of truth of Engram memory.

Everything else (the LanceDB vector index, the embedding cache's use) can be rebuilt from here.
"""

from __future__ import annotations

import sqlite3

import sqlite_utils
from sqlite_utils import Migrations

migrations = Migrations("dsv4.memory")


def _execute_script(db: sqlite_utils.Database, script: str) -> None:
    """Statement by statement: `executescript` would commit the migration's transaction half way."""
    statement = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--") and not statement.strip():
            continue
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""


@migrations()
def m001_items(db: sqlite_utils.Database) -> None:
    _execute_script(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        -- seq is an explicit INTEGER PRIMARY KEY (the rowid) so the FTS index's rowids can never be
        -- renumbered by a VACUUM; it is also the logical clock that orders writes.
        CREATE TABLE items (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            scope TEXT NOT NULL CHECK (scope IN ('user', 'repo', 'session')),
            owner TEXT NOT NULL,
            repo_id TEXT NOT NULL DEFAULT '',
            key TEXT,
            text TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('fact', 'preference', 'decision', 'note')),
            pinned INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL CHECK (status IN ('active', 'superseded')),
            created_at TEXT NOT NULL,
            superseded_by TEXT,
            superseded_at TEXT,
            session_id TEXT NOT NULL DEFAULT '',
            turn INTEGER,
            actor TEXT NOT NULL DEFAULT 'user',
            indexed INTEGER NOT NULL DEFAULT 0  -- 1 while a row for this id exists in the LanceDB index
        );
        -- At most one active item per key in one scope owner: the override rule enforced by the database.
        CREATE UNIQUE INDEX items_active_key ON items (scope, owner, key) WHERE status = 'active' AND key IS NOT NULL;
        CREATE INDEX items_visible ON items (status, scope, owner);
        CREATE INDEX items_key ON items (key);
        CREATE INDEX items_indexed ON items (indexed, status);

        CREATE VIRTUAL TABLE items_fts USING fts5 (text, key, content='items', content_rowid='seq', tokenize='porter unicode61');
        CREATE TRIGGER items_fts_ai AFTER INSERT ON items BEGIN
            INSERT INTO items_fts (rowid, text, key) VALUES (new.seq, new.text, coalesce(new.key, ''));
        END;
        CREATE TRIGGER items_fts_ad AFTER DELETE ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, text, key) VALUES ('delete', old.seq, old.text, coalesce(old.key, ''));
        END;
        CREATE TRIGGER items_fts_au AFTER UPDATE OF text, key ON items BEGIN
            INSERT INTO items_fts (items_fts, rowid, text, key) VALUES ('delete', old.seq, old.text, coalesce(old.key, ''));
            INSERT INTO items_fts (rowid, text, key) VALUES (new.seq, new.text, coalesce(new.key, ''));
        END;

        -- What was forgotten, when and why; never the text nor a hash of it.
        -- complete = 0 while the LanceDB part of the purge is still to do (a crash in between is finished on open).
        CREATE TABLE tombstones (id TEXT PRIMARY KEY, forgotten_at TEXT NOT NULL, reason TEXT NOT NULL,
                                 complete INTEGER NOT NULL DEFAULT 0);

        -- Embedding vectors by a salted hash of (model, text), so an index rebuild or a repeated text needs no model.
        CREATE TABLE embed_cache (hash TEXT PRIMARY KEY, model TEXT NOT NULL, vector BLOB NOT NULL);

        -- KV snapshots (hot/warm/cold tiers of the runtime) and what their prefix covers, so override and forget
        -- can find every snapshot that holds an item.
        CREATE TABLE kv_snapshots (
            id TEXT PRIMARY KEY, path TEXT NOT NULL, tier TEXT NOT NULL, model_key TEXT NOT NULL,
            prefix_hash TEXT NOT NULL, tokens INTEGER NOT NULL, bytes INTEGER NOT NULL, checksum TEXT NOT NULL,
            created_at TEXT NOT NULL, last_used_at TEXT NOT NULL
        );
        CREATE INDEX kv_snapshots_prefix ON kv_snapshots (model_key, prefix_hash);
        CREATE TABLE kv_snapshot_files (snapshot_id TEXT NOT NULL REFERENCES kv_snapshots (id) ON DELETE CASCADE,
                                        path TEXT NOT NULL, content_hash TEXT NOT NULL, PRIMARY KEY (snapshot_id, path));
        CREATE TABLE kv_snapshot_memory (snapshot_id TEXT NOT NULL REFERENCES kv_snapshots (id) ON DELETE CASCADE,
                                         item_id TEXT NOT NULL, PRIMARY KEY (snapshot_id, item_id));
        CREATE INDEX kv_snapshot_memory_item ON kv_snapshot_memory (item_id);
        CREATE TABLE kv_snapshot_turns (snapshot_id TEXT NOT NULL REFERENCES kv_snapshots (id) ON DELETE CASCADE,
                                        session_id TEXT NOT NULL, turn_from INTEGER NOT NULL, turn_to INTEGER NOT NULL);
        CREATE INDEX kv_snapshot_turns_session ON kv_snapshot_turns (session_id);
        """
    )


@migrations()
def m002_slots(db: sqlite_utils.Database) -> None:
    """The subject slot of each preference (memory/slots.py): a new value in an occupied slot supersedes."""
    from .slots import subject

    db.execute("ALTER TABLE items ADD COLUMN slot TEXT")
    db.execute("CREATE INDEX items_slot ON items (scope, owner, slot) WHERE status = 'active' AND slot IS NOT NULL")
    for seq, text in db.execute("SELECT seq, text FROM items WHERE kind = 'preference'").fetchall():
        found = subject(text)
        if found is not None:
            db.execute("UPDATE items SET slot = ? WHERE seq = ?", [found.slot, seq])


@migrations()
def m003_kv_snapshot_blocks(db: sqlite_utils.Database) -> None:
    """One row per full token block of a snapshot: its chained hash h_i = H(h_{i-1} || block_i), seeded with
    the model identity, so the longest cached prefix of a prompt is one indexed lookup."""
    _execute_script(
        db,
        """
        CREATE TABLE kv_snapshot_blocks (snapshot_id TEXT NOT NULL REFERENCES kv_snapshots (id) ON DELETE CASCADE,
                                         block_index INTEGER NOT NULL, hash TEXT NOT NULL,
                                         PRIMARY KEY (snapshot_id, block_index));
        CREATE INDEX kv_snapshot_blocks_hash ON kv_snapshot_blocks (hash);
        CREATE INDEX kv_snapshots_lru ON kv_snapshots (tier, last_used_at);
        """
    )
