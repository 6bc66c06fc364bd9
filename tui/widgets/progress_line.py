from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar


class ProgressLine(Horizontal):
    """What is loading or prefilling, with a bar (indeterminate until a total is known) and an ETA."""

    DEFAULT_CSS = """
    ProgressLine { height: 1; display: none; padding: 0 1; }
    ProgressLine.active { display: block; }
    ProgressLine > Label { width: auto; margin-right: 1; color: $text-muted; }
    ProgressLine > ProgressBar { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Label("", id="progress-label")
        yield ProgressBar(total=None, show_eta=True, id="progress-bar")

    def start(self, label: str, total: float | None = None) -> None:
        self.query_one(Label).update(label)
        self.query_one(ProgressBar).update(total=total, progress=0)
        self.add_class("active")

    def advance(self, label: str, done: float, total: float | None) -> None:
        if not self.has_class("active"):
            self.start(label, total)
        self.query_one(Label).update(label)
        self.query_one(ProgressBar).update(total=total, progress=done)

    def stop(self) -> None:
        self.remove_class("active")
