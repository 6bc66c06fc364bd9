from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.widgets import Static


def _brief(arguments: dict[str, Any] | str) -> str:
    if isinstance(arguments, str):
        return arguments[:60]
    parts = []
    for key, value in arguments.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        shown = shown.replace("\n", "⏎")
        parts.append(f"{key}={shown[:40]}{'…' if len(shown) > 40 else ''}")
    return " ".join(parts)[:100]


class ToolLine(Static):
    """One line per tool call: name, arguments, then its outcome."""

    DEFAULT_CSS = """
    ToolLine { padding: 0 1; color: $text-muted; }
    """

    def __init__(self, call_id: str, name: str, arguments: dict[str, Any] | str) -> None:
        super().__init__()
        self.call_id = call_id
        self.tool_name = name
        self.arguments = arguments
        self.state = "running"
        self.summary = ""

    def on_mount(self) -> None:
        self._render_line()

    def finish(self, ok: bool, summary: str) -> None:
        self.state = "ok" if ok else "error"
        self.summary = summary
        self._render_line()

    def deny(self, reason: str) -> None:
        self.state = "denied"
        self.summary = reason
        self._render_line()

    def _render_line(self) -> None:
        mark = {"running": ("…", "yellow"), "ok": ("✓", "green"), "error": ("✗", "red"), "denied": ("⊘", "red")}[self.state]
        line = Text()
        line.append(f"{mark[0]} ", style=mark[1])
        line.append(self.tool_name, style="bold")
        line.append(f" {_brief(self.arguments)}")
        if self.summary:
            line.append(f"  → {self.summary}", style="dim")
        self.update(line)
