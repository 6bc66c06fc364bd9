from __future__ import annotations

from textual.widgets import Static


class UserMessage(Static):
    DEFAULT_CSS = """
    UserMessage { margin: 1 0 1 0; padding: 0 1; border-left: thick $accent; color: $text; }
    """

    def __init__(self, text: str) -> None:
        super().__init__(text, markup=False)
        self.text = text
