from __future__ import annotations

from textual.widgets import Static


class UserMessage(Static):
    DEFAULT_CSS = """
    UserMessage { margin: 1 0 1 0; padding: 0 1; border-left: thick $accent; color: $text; background: $boost; }
    UserMessage.queued { border-left: thick $warning; color: $text-muted; }
    """

    def __init__(self, text: str, queued: bool = False) -> None:
        super().__init__(text, markup=False, classes="queued" if queued else "")
        self.text = text
