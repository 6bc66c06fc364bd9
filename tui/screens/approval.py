from __future__ import annotations

import json
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ApprovalScreen(ModalScreen[bool]):
    """Asks the user to allow or deny one tool call."""

    CSS_PATH = "approval.tcss"
    BINDINGS = [Binding("y", "allow", "Allow"), Binding("n,escape", "deny", "Deny")]

    def __init__(self, tool_name: str, arguments: dict[str, Any], reason: str) -> None:
        super().__init__()
        self.tool_name = tool_name
        self.arguments = arguments
        self.reason = reason

    def compose(self) -> ComposeResult:
        detail = json.dumps(self.arguments, indent=2)
        if len(detail) > 2000:
            detail = detail[:2000] + "\n…"
        with Vertical(id="dialog"):
            yield Static(f"Allow {self.tool_name}? ({self.reason})", id="question", markup=False)
            yield Static(detail, id="detail", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Allow (y)", id="allow", variant="success")
                yield Button("Deny (n)", id="deny", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "allow")

    def action_allow(self) -> None:
        self.dismiss(True)

    def action_deny(self) -> None:
        self.dismiss(False)
