from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Collapsible, Static


class ReasoningBlock(Collapsible):
    """The model's reasoning, collapsed by default: one line says it is there and how long it is."""

    DEFAULT_CSS = """
    ReasoningBlock { margin: 0 1; border: none; padding: 0; background: transparent; }
    ReasoningBlock > Contents { padding: 0 0 0 2; }
    ReasoningBlock Static { color: $text-muted; text-style: italic; }
    """

    def __init__(self, text: str = "") -> None:
        super().__init__(title="thinking…", collapsed=True)
        self.text = text
        self._body = Static(text, markup=False)

    def compose(self) -> ComposeResult:
        yield from super().compose()

    def on_mount(self) -> None:
        self.query_one(Collapsible.Contents).mount(self._body)

    def append(self, delta: str) -> None:
        self.text += delta
        self._body.update(self.text)
        self.title = f"thinking ({len(self.text.split())} words)"

    def finish(self) -> None:
        self.title = f"thought ({len(self.text.split())} words)"
