"""One line that says what a tool call does, for every front end (the TUI's tool cards, headless progress)."""

from __future__ import annotations

import json
from typing import Any

LEAD_KEYS = ("command", "path", "query", "pattern", "key", "text")
BULKY_KEYS = frozenset({"old_string", "new_string", "content", "patch", "edits"})  # shown by the diff instead


def brief(arguments: dict[str, Any] | str, width: int = 100) -> str:
    """One line of a call's arguments: its command or path, then short scalar arguments as key=value (long
    texts such as an edit's old and new strings are left to the diff and the output)."""
    if isinstance(arguments, str):
        return arguments.replace("\n", "⏎")[:width]
    lead_key = next((k for k in LEAD_KEYS if isinstance(arguments.get(k), str)), None)
    parts = [str(arguments[lead_key]).replace("\n", "⏎")] if lead_key else []
    for key, value in arguments.items():
        if key == lead_key or key in BULKY_KEYS:
            continue
        shown = value if isinstance(value, str) else json.dumps(value)
        if lead_key and (len(shown) > 30 or "\n" in shown):
            continue
        parts.append(f"{key}={shown.replace(chr(10), '⏎')[:30]}")
    line = " ".join(parts)
    return line if len(line) <= width else line[:width - 1] + "…"
