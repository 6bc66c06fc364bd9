"""Live memory: a memory change made during a session reaches the model as a conversation message.

The memory block in the system message is built once, at session start (and again after a forget, the
one change that must leave the prefix at once); editing it mid-session would invalidate the whole prompt
prefix (the in-process KV and any server's prompt cache). So a remember, an override, a pin or an undone
replacement made during a session is logged as a `memory_note` event, and the View renders it as a user
message at that point of the conversation: the model sees it from the next request on, and the newest note
comes last, after anything it replaces. A resumed session's system message holds the current block, and
the notes stay in the log as what happened. A forget redacts notes like any other logged text.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from .messages import Message, user

NoteAction = Literal["remembered", "captured", "pinned", "unpinned", "restored"]


class MemoryNote(BaseModel):
    """The payload of a `memory_note` event."""

    action: NoteAction
    item_id: str
    text: str
    scope: str
    pinned: bool = False
    replaces: str | None = None  # the text of the value this one superseded
    replaced_id: str | None = None

    def payload(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def note_message(payload: dict[str, Any]) -> Message:
    """The user message the View shows for a `memory_note` event (rendered from the event alone)."""
    note = MemoryNote.model_validate(payload)
    where = f"{note.scope} scope" + (", pinned" if note.pinned else "")
    if note.action == "restored":
        body = (f"the user undid a change; this memory applies again ({note.item_id}, {where}): {note.text}"
                + (f". It replaces {note.replaced_id}, which no longer applies: {note.replaces}" if note.replaces else ""))
    elif note.action in ("pinned", "unpinned"):
        body = f"{note.action} ({note.item_id}, {where}): {note.text}"
    else:
        said = "from the user's message above" if note.action == "captured" else "the user asked you to remember"
        body = f"{said} ({note.item_id}, {where}): {note.text}"
        if note.replaces:
            body += (f". This replaces an earlier memory ({note.replaced_id}) that no longer applies, even where "
                     f"the system message or the conversation above still shows it: {note.replaces}")
    return user(f"[Memory update: {body}]")
