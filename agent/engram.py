"""The Engram store as the agent opens it, and the memory commands every front end shares.

`open_memory` wires a forget to the agent's redaction, so a memory forget purges the memory's own files
and then the agent's copies of it: the session log and titles, debug logs, the prompt history
(memory/purge.py calls `redact_everywhere` through `log_redactor`; memory never opens `sessions.db`).
`AgentSession`, the `memory` CLI and the model's `forget` tool all forget through a store opened here
(docs/architecture.md, "Ownership").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..home import dsv4_home
from .sessions import SessionStore

if TYPE_CHECKING:
    from ..memory.purge import Redaction
    from ..memory.store import MemoryStore


# Files under $DSV4_HOME besides sessions.db that hold what the user typed: `--debug` logs and the TUI's
# stderr logs (logs/*.log), the TUI's prompt history (history/*.json). A forget redacts them too.
USER_TEXT_FILES = (("logs", "*.log"), ("history", "*.json"))


def open_memory(sessions: SessionStore | None = None, **options: Any) -> MemoryStore:
    """`sessions`: the open session store of a running session; None redacts `$DSV4_HOME/sessions.db` when it exists."""
    from ..memory.store import MemoryStore

    return MemoryStore.open(dsv4_home(), log_redactor=lambda redactions: redact_everywhere(redactions, sessions),
                            **options)


def redact_everywhere(redactions: list[Redaction], sessions: SessionStore | None) -> tuple[int, list[str]]:
    """A forget's redaction of the agent's own copies: the session log and titles, then the user-text files."""
    from .log_redaction import needles, scrub_file

    store = sessions or (SessionStore.open_default() if SessionStore.default_exists() else None)
    try:
        items = store.needles(redactions) if store is not None else [needles(r, []) for r in redactions]
        changed, touched = store.redact(redactions, items) if store is not None else (0, [])
    finally:
        if store is not None and sessions is None:
            store.close()
    home = dsv4_home()
    for folder, pattern in USER_TEXT_FILES:
        changed += sum(scrub_file(path, items) for path in sorted((home / folder).glob(pattern)) if path.is_file())
    return changed, touched


def parse_remember(text: str) -> tuple[str, str | None]:
    """`key=value` makes a keyed (overriding) memory when the key is one word; anything else is plain text."""
    key, sep, value = text.partition("=")
    keyed = bool(sep) and key.strip() and " " not in key.strip()
    return (value.strip(), key.strip()) if keyed else (text, None)
