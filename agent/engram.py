"""The Engram store as the agent opens it, and the memory commands every front end shares.

`open_memory` wires a forget to the session store's redaction, so a memory forget purges the memory's
own files and then the session log's copies of the text (memory/purge.py calls `SessionStore.redact`
through `log_redactor`; memory never opens `sessions.db`). `AgentSession`, the `memory` CLI and the
model's `forget` tool all forget through a store opened here (docs/architecture.md, "Ownership").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..home import dsv4_home
from .sessions import SessionStore

if TYPE_CHECKING:
    from ..memory.purge import Redaction
    from ..memory.store import MemoryStore


def open_memory(sessions: SessionStore | None = None, **options: Any) -> MemoryStore:
    """`sessions`: the open session store of a running session; None redacts `$DSV4_HOME/sessions.db` when it exists."""
    from ..memory.store import MemoryStore

    return MemoryStore.open(dsv4_home(), log_redactor=sessions.redact if sessions else _redact_default_log, **options)


def _redact_default_log(redactions: list[Redaction]) -> tuple[int, list[str]]:
    if not SessionStore.default_exists():
        return 0, []
    store = SessionStore.open_default()
    try:
        return store.redact(redactions)
    finally:
        store.close()


def parse_remember(text: str) -> tuple[str, str | None]:
    """`key=value` makes a keyed (overriding) memory when the key is one word; anything else is plain text."""
    key, sep, value = text.partition("=")
    keyed = bool(sep) and key.strip() and " " not in key.strip()
    return (value.strip(), key.strip()) if keyed else (text, None)
