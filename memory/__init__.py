"""Engram memory: facts, preferences and decisions that override deterministically and forget completely.

Storage under `$DSV4_HOME/memory/`: `memory.db` (SQLite, the source of truth: items, FTS5 index,
tombstones, embedding cache, KV-snapshot index) and `index/` (LanceDB: id, vector, scope/owner/repo/kind
columns only; rebuilt from SQLite when missing). Rules, enforced in code (docs/architecture.md, "Engram memory"):

- override: a write with a key supersedes the active item of that key in that scope (`supersedes=id` for
  unkeyed items; an unkeyed preference supersedes the occupant of its subject slot); only active items are
  ever retrieved or put in context; on the same key (or preference slot) session > repo > user.
- forget: purges the item (and the values it superseded) from SQLite + FTS (secure_delete, WAL
  checkpoint), LanceDB (compaction with deletions materialised, old versions cleaned), KV snapshots whose
  provenance covers it, and session event logs (text redacted in place); the tombstone has id, time, reason.
- pin: pinned items are always in the block; pinned items over the budget raise PinnedOverBudget.

API (importing this package loads neither LanceDB, pyarrow nor numpy; they load on first use):

    store = MemoryStore.open(dsv4_home(), embedder="auto")    # "auto": all-MiniLM-L6-v2 on a background
                                                              # thread; HashingEmbedder(); None = FTS only
    store.warm_up()                                           # start loading the model now (TUI startup)
    r = store.remember(text, key=None, scope="repo", kind="fact", pin=False, supersedes=None,
                       repo_id=..., session_id=..., turn=None, actor="user")   # -> Remembered(item, superseded)
    store.forget(item_id) / store.forget(key=K, scope=None, repo_id=..., session_id=...)
                      / store.forget(ids=[...confirmed from a recall...])    # -> Forgotten
    store.pin(item_id, repo_id, session_id) / store.unpin(item_id)           # -> Item
    store.recall(query, repo_id=..., session_id=..., k=8, scope=None)        # -> RecallResult(hits, note)
    store.current_view(repo_id, session_id, budget_tokens=None, count_tokens=estimate_tokens, query=None)
        # -> MemoryBlock(.text: exactly what goes into the model's context, .item_ids, .pinned_ids, ...)
    store.history(key, repo_id, session_id)   # every value of a key, superseded ones until forgotten
    store.list(repo_id, session_id, scope=None, include_superseded=False); store.get(item_id)
    store.export()                            # one JSON-able dict: items, tombstones
    capture_preferences(user_message)         # pure: -> [Candidate(text, key=None, scope, kind, slot)]
    store.capture(user_message, repo_id=..., session_id=..., turn=...)  # remember those: -> [Remembered]
        # an unkeyed preference goes into its subject slot (slots.py: rules; slot_match.py: + embedding
        # similarity); Remembered.superseded / .replaces ("replaces: ...") / .rule say what it replaced
    store.undo_replace(new_id, keep_new=True) # the replaced value active again (keep_new=False: the new one goes)
    spans.memory_spans(text); spans.redact(stored, spans, marker)   # forget's spans, matched across escaping
    bytescan.scan(directory, texts)           # tests/evals: a text in raw/lower/JSON/base64/UTF-16 form

Errors (all EngramError, one-line messages for the user): InvalidInput, NotFound, PinnedOverBudget,
StoreUnavailable (locked or damaged database). The KV-snapshot index is `dsv4.memory.snapshots`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .capture import capture_preferences
from .types import (Candidate, EngramError, Hit, InvalidInput, Item, MemoryBlock, NotFound, PinnedOverBudget,
                    PinnedOverWindow, RecallResult, StoreUnavailable, Tombstone)

if TYPE_CHECKING:
    from .embed import HashingEmbedder, LazyEmbedder, MiniLMEmbedder
    from .store import MemoryStore, Remembered
    from .view import estimate_tokens

_LAZY = {"MemoryStore": "store", "Remembered": "store", "HashingEmbedder": "embed", "LazyEmbedder": "embed",
         "MiniLMEmbedder": "embed", "estimate_tokens": "view", "Forgotten": "purge"}


def __getattr__(name: str) -> Any:
    # The store pulls in sqlite-utils; keep `import dsv4.memory` nearly free for the CLI's start-up time.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)


__all__ = ["Candidate", "EngramError", "Hit", "InvalidInput", "Item", "MemoryBlock", "NotFound", "PinnedOverBudget", "PinnedOverWindow",
           "RecallResult", "StoreUnavailable", "Tombstone", "capture_preferences", *_LAZY]
