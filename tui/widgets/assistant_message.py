from __future__ import annotations

from textual.widgets import Static


class AssistantMessage(Static):
    """Assistant text that grows as deltas stream in."""

    DEFAULT_CSS = """
    AssistantMessage { margin: 0 0 1 0; padding: 0 1; }
    """

    def __init__(self, text: str = "") -> None:
        super().__init__(text, markup=False)
        self.text = text

    def append(self, delta: str) -> None:
        self.text += delta
        self.update(self.text)
