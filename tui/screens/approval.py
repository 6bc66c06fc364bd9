from __future__ import annotations

import json
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Static

from ..widgets.diff_view import DiffView

Answer = str  # "allow" | "deny" | "always"


class ApprovalScreen(ModalScreen[Answer]):
    """Asks the user to allow one tool call, showing exactly what it would do: the diff of an edit, the
    command of a shell call. y allow, n or Esc deny, a always allow this kind for the session."""

    CSS_PATH = "approval.tcss"
    BINDINGS = [Binding("y", "answer('allow')", "Allow"), Binding("n,escape", "answer('deny')", "Deny"),
                Binding("a", "answer('always')", "Always allow")]

    def __init__(self, tool_name: str, arguments: dict[str, Any], reason: str, preview: Any = None,
                 rule_text: str = "") -> None:
        super().__init__()
        self.tool_name = tool_name
        self.arguments = arguments
        self.reason = reason
        self.preview = preview  # an EditPreview, or None for a call that is not a plain edit
        self.rule_text = rule_text  # what "always" would allow, e.g. "bash: npm test*"

    def detail(self) -> Widget:
        command = self.arguments.get("command")
        if self.preview is not None:
            if self.preview.error:
                return Static(Content.styled(f"the edit would fail: {self.preview.error}", "$text-error"),
                              id="detail-body")
            if self.preview.diff:
                return DiffView(self.preview.diff, id="detail-body")
            return Static("(no change to any file)", id="detail-body", markup=False)
        if isinstance(command, str):
            return Static(Content.styled("$ " + command, "bold"), id="detail-body")
        shown = json.dumps(self.arguments, indent=2, ensure_ascii=False)
        return Static(shown if len(shown) <= 4000 else shown[:4000] + "\n…", id="detail-body", markup=False)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.assemble((f"Allow {self.tool_name}?", "bold"), (f"  {self.reason}", "dim")),
                         id="question")
            with VerticalScroll(id="detail"):
                yield self.detail()
            with Horizontal(id="buttons"):
                yield Button("Allow  y", id="allow", variant="success", compact=True)
                yield Button("Always  a", id="always", variant="primary", compact=True,
                             tooltip=f"allow {self.rule_text or self.tool_name} for this session")
                yield Button("Deny  n/Esc", id="deny", variant="error", compact=True)
            if self.rule_text:
                yield Static(f"a: always allow “{self.rule_text}” in this session", id="rule", markup=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id))

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)
