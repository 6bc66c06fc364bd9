from __future__ import annotations

from textual.widgets import Input


class PromptInput(Input):
    DEFAULT_CSS = """
    PromptInput { dock: bottom; margin-bottom: 1; }
    """

    def __init__(self) -> None:
        super().__init__(placeholder="Ask dsv4-code… (Enter to send, Esc to stop, Ctrl+Q to quit)", id="prompt")
