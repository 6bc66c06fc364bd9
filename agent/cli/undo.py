"""`dsv4-code undo [--turns N] [--session ID] [--list]`: the files of a session's last turns back, no model needed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .errors import EXIT_NOT_DONE, fail

if TYPE_CHECKING:
    from ..repo import Repo


def add_undo_parser(subparsers: Any) -> None:
    undo = subparsers.add_parser("undo", help="restore the files changed by the last turn")
    undo.add_argument("--session", metavar="ID", help="undo in this session (default: the latest)")
    undo.add_argument("--turns", type=int, default=1, metavar="N", help="go back N turns (default 1)")
    undo.add_argument("--list", action="store_true", help="list the session's checkpoints instead")


def run_undo_command(repo: Repo, session: str | None, turns: int, list_only: bool) -> int:
    from ..session import resolve_session
    from ..sessions import SessionStore
    from ..undo import list_checkpoints, undo_turns

    if turns < 1:
        return fail("--turns must be at least 1")
    store = SessionStore.open_default()
    session_id = resolve_session(store, repo, session, continue_latest=session is None)
    if list_only:
        checkpoints = list_checkpoints(repo, session_id)
        print(f"{len(checkpoints)} checkpoint{'s' * (len(checkpoints) != 1)} in session {session_id} (newest first):")
        for c in checkpoints:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.created_at))
            print(f"  --turns {c.turns_back}: before turn {c.before_turn}, taken {stamp}  {c.id[:12]}")
        return 0
    result = undo_turns(repo, store, session_id, turns)  # UndoFailed: exit 1 (errors.py)
    if not result.restored:
        print(f"nothing to undo in session {session_id}")
        return EXIT_NOT_DONE
    print(f"restored {len(result.restored)} file{'s' * (len(result.restored) != 1)} of session {session_id}:")
    for path in result.restored:
        print(f"  {path}")
    return 0
