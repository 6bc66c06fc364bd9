"""The View: what the model sees, folded from the append-only session log.

The log keeps every event; the View is a projection of it. Without a compaction it is the logged
conversation; after one (`compacted`), it is the unchanged system message, one message with the task
state and the summary, then every message from the first kept event on. `compaction_undone` pops the
latest compaction, which restores the View before it. An `undo` of file changes adds a note that tells
the model which of its edits were reverted. `messages()` always forms a valid request: every tool call
is answered (a call whose result was never logged gets an "interrupted" result) and no result stands
without its call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from .memory_notes import note_message
from .messages import Message, ToolCall, system, tool_result, user

Trigger = Literal["auto", "manual", "overflow"]
INTERRUPTED = "error: interrupted; the session stopped before this tool call finished"


class Compaction(BaseModel):
    """The payload of a `compacted` event."""

    id: str
    first_kept_event_id: int  # messages from this event on are kept whole; with nothing kept, the event's own id
    summary: str
    source: Literal["model", "digest"]
    focus: str | None = None
    trigger: Trigger
    tokens_before: int
    tokens_after: int
    state: str  # the task state, rendered when the compaction was made
    memory: str = ""  # pinned memory that is not in the system message (pinned after the session started)
    source_hash: str  # of the log range the summary was made from: a forget that changes it replaces the summary
    summary_tokens: int = 0  # prompt + completion tokens the summary request cost
    # Not part of the payload: where the event sits in the log.
    event_id: int = 0

    def payload(self) -> dict[str, Any]:
        return self.model_dump(exclude={"event_id"})


def compaction_message(compaction: Compaction) -> Message:
    """One user message, rendered deterministically from the compaction event alone."""
    parts = ["[Context compacted: the earlier part of this session was replaced by the task state and the summary "
             "below. The system message above (instructions, repository, pinned memory) is unchanged and still applies. "
             "The most recent steps follow verbatim.]", "", compaction.state]
    if compaction.memory:
        parts += ["", "## Memory pinned since the session started", compaction.memory]
    label = "written by the model" if compaction.source == "model" else "a digest of the logged steps"
    parts += ["", f"## Summary of the earlier steps ({label})", compaction.summary.strip() or "(empty)"]
    if compaction.focus:
        parts += ["", f"(The user asked the summary to focus on: {compaction.focus})"]
    return user("\n".join(parts))


def undo_note(payload: dict[str, Any]) -> Message:
    restored = payload.get("restored", [])
    return user(f"[Note: the user undid file changes ({payload.get('command', 'undo')}). These files are back to their "
                f"earlier state, so your edits to them are reverted even where the conversation above describes them: "
                f"{', '.join(restored) or 'none'}. Read them again before you rely on their content.]")


@dataclass
class Entry:
    event_id: int
    message: Message


@dataclass
class View:
    system_text: str
    entries: list[Entry] = field(default_factory=list)
    compactions: list[Compaction] = field(default_factory=list)  # a stack: the last one is active

    @classmethod
    def fold(cls, system_text: str, events: Iterable[dict[str, Any]]) -> View:
        view = cls(system_text)
        for event in events:
            view.apply(event)
        return view

    def apply(self, event: dict[str, Any]) -> None:
        kind, payload = event["kind"], event["payload"]
        if kind == "message" and payload.get("role") != "system":
            self.entries.append(Entry(event["id"], Message.model_validate(payload)))
        elif kind == "undo":
            self.entries.append(Entry(event["id"], undo_note(payload)))
        elif kind == "memory_note":  # a memory change made mid-session (agent/memory_notes.py)
            self.entries.append(Entry(event["id"], note_message(payload)))
        elif kind == "compacted":
            self.compactions.append(Compaction.model_validate(payload | {"event_id": event["id"]}))
        elif kind == "compaction_undone":
            self.compactions = [c for c in self.compactions if c.id != payload["id"]]

    @property
    def active(self) -> Compaction | None:
        return self.compactions[-1] if self.compactions else None

    def visible(self) -> list[Entry]:
        """The entries the model sees whole: all of them, or those from the active compaction's first kept event."""
        active = self.active
        if active is None:
            return list(self.entries)
        return [entry for entry in self.entries if entry.event_id >= active.first_kept_event_id]

    def messages(self) -> list[Message]:
        head = [system(self.system_text)]
        if self.active is not None:
            head.append(compaction_message(self.active))
        return head + answered([entry.message for entry in self.visible()])


def answered(messages: list[Message]) -> list[Message]:
    """Every tool call followed by its result (a missing one says the call was interrupted); orphan results dropped."""
    out: list[Message] = []
    pending: dict[str, ToolCall] = {}
    for message in messages:
        if message.role == "tool":
            if message.tool_call_id in pending:
                del pending[message.tool_call_id]
                out.append(message)
            continue
        out.extend(_interrupted(pending))
        pending = {call.id: call for call in message.tool_calls} if message.role == "assistant" else {}
        out.append(message)
    out.extend(_interrupted(pending))
    return out


def _interrupted(pending: dict[str, ToolCall]) -> list[Message]:
    return [tool_result(call.id, call.name, INTERRUPTED) for call in pending.values()]
