"""Everything the loop derives from the session log, folded one event at a time: the View the model sees,
the task state, and the running hash a compaction records of what it was made from.

The loop feeds its own events as it logs them and, before each turn, whatever was logged from outside
since (an undo, another process), so nothing is re-read and the fold costs the same on turn 500 as on turn 1.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .sessions import SessionStore
from .task_state import TaskState
from .view import View

# Kinds that say nothing a summary is made from; their payloads are left out of the source hash.
NOT_SOURCE = frozenset({"usage", "context_usage", "compacted", "compaction_undone", "turn_done", "headless_report"})


def hash_event(hasher: Any, event: dict[str, Any]) -> None:
    if event["kind"] not in NOT_SOURCE:
        hasher.update(json.dumps([event["id"], event["kind"], event["payload"]], sort_keys=True).encode())


def source_hash(events: list[dict[str, Any]], before_event_id: int) -> str:
    """The hash of what a compaction logged before `before_event_id` was made from (a forget changes it)."""
    hasher = hashlib.sha256()
    for event in events:
        if event["id"] < before_event_id:
            hash_event(hasher, event)
    return hasher.hexdigest()


class LogFold:
    def __init__(self, system_text: str) -> None:
        self.view = View(system_text)
        self.task = TaskState()
        self.last_id = 0
        self._hasher = hashlib.sha256()

    @classmethod
    def of(cls, store: SessionStore, session_id: str, system_text: str) -> LogFold:
        fold = cls(system_text)
        fold.sync(store, session_id)
        return fold

    def apply(self, event: dict[str, Any]) -> None:
        self.view.apply(event)
        self.task.apply(event["kind"], event["payload"])
        hash_event(self._hasher, event)
        self.last_id = max(self.last_id, event["id"])

    def sync(self, store: SessionStore, session_id: str) -> None:
        """Fold what was logged since the last event seen."""
        for event in store.events(session_id, after=self.last_id):
            self.apply(event)

    def source_hash(self) -> str:
        return self._hasher.hexdigest()
