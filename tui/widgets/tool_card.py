from __future__ import annotations

import json
import time
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from ...agent.call_brief import brief

from .diff_view import DiffView

MARKS = {"running": ("…", "$text-warning"), "ok": ("✓", "$text-success"), "error": ("✗", "$text-error"),
         "denied": ("⊘", "$text-error"), "waiting": ("?", "$text-warning")}  # theme variables, resolved when drawn
SLOW_S = 1.0  # shorter runs show no duration: it would be noise


class ToolCard(Vertical):
    """One tool call: a header line (status, name, argument summary, outcome, duration); click it or press
    Enter on it to show its output. Edits show their diff underneath."""

    can_focus = True
    DEFAULT_CSS = """
    ToolCard { height: auto; padding: 0 1; }
    ToolCard > #header { color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    ToolCard:focus > #header { background: $boost; }
    ToolCard > #output { display: none; color: $text-muted; padding: 0 0 0 2; }
    ToolCard.expanded > #output { display: block; }
    ToolCard > #diff { display: none; }
    ToolCard > #diff.shown { display: block; }
    """
    BINDINGS = [("enter", "toggle", "Show output")]

    def __init__(self, call_id: str, name: str, arguments: dict[str, Any] | str) -> None:
        super().__init__()
        self.call_id = call_id
        self.tool_name = name
        self.arguments = arguments
        self.state = "running"
        self.summary = ""
        self.output = ""
        self.diff = ""
        self._started = time.monotonic()
        self._elapsed: float | None = None
        self._header = Static(id="header")
        self._output = Static(id="output", markup=False)
        self._diff = DiffView("", id="diff")  # filled by show_diff; hidden while empty

    def compose(self) -> ComposeResult:
        yield self._header
        yield self._diff
        yield self._output

    def on_mount(self) -> None:
        self._render_header()

    def on_click(self) -> None:
        self.action_toggle()

    def action_toggle(self) -> None:
        self.toggle_class("expanded")

    def wait_for_approval(self) -> None:
        self.state = "waiting"
        self._render_header()

    def approved(self) -> None:
        self.state = "running"
        self._render_header()

    def finish(self, ok: bool, summary: str, data: dict[str, Any] | None = None) -> None:
        self.state = "ok" if ok else "error"
        self.summary = summary
        self._elapsed = time.monotonic() - self._started
        detail = {k: v for k, v in (data or {}).items() if k not in ("path",)}
        self.output = summary + ("\n" + json.dumps(detail, indent=1, ensure_ascii=False)[:4000] if detail else "")
        self._output.update(self.output)
        self._render_header()

    def deny(self, reason: str) -> None:
        self.state = "denied"
        self.summary = reason
        self._render_header()

    def show_diff(self, diff: str) -> None:
        if diff and not self.diff:
            self.diff = diff
            self._diff.show(diff)

    def _render_header(self) -> None:
        mark, color = MARKS[self.state]
        parts: list[tuple[str, str] | str] = [(f"{mark} ", color), (self.tool_name, "bold")]
        if shown := brief(self.arguments):
            parts.append(f" {shown}")
        if self.summary:
            parts.append((f"  → {self.summary}", "dim"))
        if self._elapsed is not None and self._elapsed >= SLOW_S:
            parts.append((f"  {self._elapsed:.1f}s", "dim"))
        self._header.update(Content.assemble(*parts))
