"""Undo and rewind of a session's turns: the one implementation behind `AgentSession.undo`, `dsv4-code undo`,
`/undo` and `/rewind N` (docs/architecture.md, "AgentSession").

A rewind restores the files (tools/checkpoints.py) and logs an `undo` event; the View (agent/view.py)
turns that event into a note telling the model which of its edits were reverted. The conversation itself
is not rewound (`rewind_conversation` below).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..tools.checkpoints import CheckpointError, CheckpointStore, rewind, undo_last_turn
from .errors import SessionCommandError
from .repo import Repo
from .sessions import SessionStore


class UndoFailed(SessionCommandError):
    """The checkpoint store could not restore the files; the message is for the user."""


@dataclass(frozen=True)
class UndoResult:
    session_id: str
    turns: int
    restored: list[str] = field(default_factory=list)  # repo-relative paths, empty when nothing to undo
    conversation_rewound: bool = False


@dataclass(frozen=True)
class CheckpointInfo:
    turns_back: int  # the `--turns N` that restores it
    before_turn: int
    created_at: float  # unix time
    id: str


def undo_turns(repo: Repo, store: SessionStore, session_id: str, turns: int = 1) -> UndoResult:
    """Restore the files as they were `turns` turns ago and log it in the session."""
    if turns < 1:
        raise ValueError("turns must be at least 1")
    try:
        restored = undo_last_turn(repo.root, session_id) if turns == 1 else rewind(repo.root, session_id, turns)
    except CheckpointError as exc:
        raise UndoFailed(str(exc)) from None
    if not restored:
        return UndoResult(session_id=session_id, turns=turns)
    rewound = rewind_conversation(store, session_id, turns)
    store.append(session_id, store.turns(session_id), "undo", {"turns": turns, "restored": restored})
    return UndoResult(session_id=session_id, turns=turns, restored=restored, conversation_rewound=rewound)


def rewind_conversation(store: SessionStore, session_id: str, turns: int) -> bool:
    """The hook for rewinding the conversation with the files. The log is append-only and the model is told
    of the reverted edits by the View's undo note instead, so nothing is rewound and this says so."""
    return False


def list_checkpoints(repo: Repo, session_id: str) -> list[CheckpointInfo]:
    """Newest first; the n-th is what `undo --turns n` goes back to."""
    return [CheckpointInfo(turns_back=n, before_turn=c.turn, created_at=c.created_at, id=c.id)
            for n, c in enumerate(CheckpointStore(repo.root).list(session_id), start=1)]
