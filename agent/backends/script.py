"""The scripted-conversation format shared by ScriptedBackend and the loopback replay server.

A script is a JSON list of assistant turns: `{"content": str, "tool_calls": [{"name": str,
"arguments": {...}}], "reasoning_content"?: str}`. `arguments` may also be a string, which is sent
as-is: that is how a script plays a model that writes malformed JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field


class ScriptedToolCall(BaseModel):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)

    def raw_arguments(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


class ScriptedTurn(BaseModel):
    content: str = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    reasoning_content: str | None = None


class ScriptError(Exception):
    pass


def load_script(path: Path) -> list[ScriptedTurn]:
    if not path.is_file():
        raise ScriptError(f"script file {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ScriptError(f"script file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ScriptError(f"script file {path} must hold a JSON list of assistant turns")
    return [ScriptedTurn.model_validate(turn) for turn in data]


def chunk_text(text: str, size: int = 12) -> list[str]:
    """Split into small pieces so consumers see real streaming."""
    return [text[i:i + size] for i in range(0, len(text), size)]
