"""Checks every tool call's decoded arguments pass before any tool sees them.

JSON can carry what no file, command or UTF-8 text can hold (a `\\ud800` escape decodes to a lone
surrogate) and nest deeper than anything a tool takes; both are refused here, for every tool at once.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class BadArguments(ValueError):
    pass


def decode_arguments(raw: str) -> Any:
    try:
        return json.loads(raw or "{}")
    except RecursionError:
        raise BadArguments("the arguments nest too deeply to decode") from None


def check_arguments(value: Any, where: str = "arguments", depth: int = 0) -> None:
    """Raise BadArguments naming the first field that holds a lone surrogate or nests too deeply."""
    if depth > MAX_DEPTH:
        raise BadArguments(f"{where} nests more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        bad = next((k for k, ch in enumerate(value) if "\ud800" <= ch <= "\udfff"), None)
        if bad is not None:
            raise BadArguments(f"{where} holds a lone surrogate (\\u{ord(value[bad]):04x}) at character {bad}; "
                               "send valid Unicode text")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_arguments(key, f"{where} key", depth + 1)
            check_arguments(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for k, item in enumerate(value):
            check_arguments(item, f"{where}[{k}]", depth + 1)
