from __future__ import annotations

from textual.widgets import Static


class Notice(Static):
    """A line from dsv4-code itself: errors, turn outcomes, hints, command output."""

    DEFAULT_CSS = """
    Notice { padding: 0 1; color: $text-muted; }
    Notice.error { color: $error; text-style: bold; }
    Notice.event { color: $text-muted; text-style: italic; }
    """

    def __init__(self, text: str, error: bool = False, kind: str = "") -> None:
        classes = " ".join(c for c in ("error" if error else "", kind) if c)
        super().__init__(text, markup=False, classes=classes)
        self.text = text
