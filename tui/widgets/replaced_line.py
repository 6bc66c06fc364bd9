from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

UNDO_KEY = "ctrl+r"  # TextArea binds ctrl+z/u/y; ctrl+r ("restore") reaches the screen with the prompt focused


class ReplacedLine(Static):
    """A remembered value that superseded an older one: "replaces: <old>" and the one key that takes it back."""

    DEFAULT_CSS = """
    ReplacedLine { padding: 0 1 0 3; color: $text-muted; }
    """

    def __init__(self, item_id: str, text: str, old_text: str) -> None:
        super().__init__()
        self.item_id = item_id
        self.text = text
        self.old_text = old_text
        self.state = "undoable"  # | "undone" | "kept" (a newer replacement holds the key now)

    def render(self) -> Text:
        line = Text()
        line.append(f"remembered {self.item_id}: {self.text}")
        line.append("  — replaces: ", style="bold")
        line.append(self.old_text, style="strike" if self.state == "undone" else "")
        if self.state == "undoable":
            line.append(f"  ({UNDO_KEY} undo)", style="italic")
        elif self.state == "undone":
            line.append("  — undone", style="italic")
        return line

    def mark(self, state: str) -> None:
        self.state = state
        self.refresh()
