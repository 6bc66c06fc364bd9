from __future__ import annotations

from textual.widgets import Static


class Notice(Static):
    """A line from dsv4-code itself: errors, turn outcomes, hints."""

    DEFAULT_CSS = """
    Notice { padding: 0 1; color: $text-muted; text-style: italic; }
    Notice.error { color: $error; text-style: bold; }
    """

    def __init__(self, text: str, error: bool = False) -> None:
        super().__init__(text, markup=False, classes="error" if error else "")
        self.text = text
