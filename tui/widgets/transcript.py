from __future__ import annotations

from typing import Any

from textual.containers import VerticalScroll

from .assistant_message import AssistantMessage
from .notice import Notice
from .tool_line import ToolLine
from .user_message import UserMessage


class Transcript(VerticalScroll):
    """The conversation, newest at the bottom."""

    DEFAULT_CSS = """
    Transcript { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._assistant: AssistantMessage | None = None
        self._tools: dict[str, ToolLine] = {}

    def _add(self, widget: Any) -> None:
        self.mount(widget)
        self.scroll_end(animate=False)

    def add_user(self, text: str) -> None:
        self._assistant = None
        self._add(UserMessage(text))

    def add_assistant_delta(self, text: str) -> None:
        if self._assistant is None:
            self._assistant = AssistantMessage()
            self._add(self._assistant)
        self._assistant.append(text)
        self.scroll_end(animate=False)

    def add_assistant(self, text: str) -> None:
        self._assistant = None
        if text.strip():
            self._add(AssistantMessage(text))

    def end_assistant(self) -> None:
        self._assistant = None

    def add_tool(self, call_id: str, name: str, arguments: dict[str, Any] | str) -> ToolLine:
        self._assistant = None
        line = ToolLine(call_id, name, arguments)
        self._tools[call_id] = line
        self._add(line)
        return line

    def tool(self, call_id: str) -> ToolLine | None:
        return self._tools.get(call_id)

    def add_notice(self, text: str, error: bool = False) -> None:
        self._assistant = None
        self._add(Notice(text, error=error))
