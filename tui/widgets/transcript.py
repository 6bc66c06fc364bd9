from __future__ import annotations

from typing import Any

from textual.containers import VerticalScroll
from textual.widget import AwaitMount
from textual.widget import Widget

from .assistant_message import AssistantMessage
from .diff_view import DiffView
from .event_line import EventLine
from .notice import Notice
from .replaced_line import ReplacedLine
from .reasoning_block import ReasoningBlock
from .test_summary import TestSummary
from .tool_card import ToolCard
from .user_message import UserMessage


class Transcript(VerticalScroll):
    """The conversation, newest at the bottom; it follows the end unless the user scrolled up."""

    DEFAULT_CSS = """
    Transcript { height: 1fr; padding: 0 1; }
    """

    def __init__(self) -> None:
        super().__init__(id="transcript")
        self._assistant: AssistantMessage | None = None
        self._reasoning: ReasoningBlock | None = None
        self._tools: dict[str, ToolCard] = {}

    def _add(self, widget: Widget) -> AwaitMount:
        follow = self.is_vertical_scroll_end or self.max_scroll_y == 0
        mounted = self.mount(widget)
        if follow:
            self.scroll_end(animate=False)
        return mounted

    async def end_stream(self) -> None:
        if self._reasoning is not None:
            self._reasoning.finish()
        self._assistant = self._reasoning = None

    async def add_user(self, text: str, queued: bool = False) -> UserMessage:
        await self.end_stream()
        message = UserMessage(text, queued=queued)
        self._add(message)
        return message

    async def add_assistant_delta(self, text: str) -> None:
        if self._reasoning is not None:
            self._reasoning.finish()
            self._reasoning = None
        if self._assistant is None:
            self._assistant = AssistantMessage()
            await self._add(self._assistant)  # mounted before its tail takes text
        self._assistant.append_delta(text)
        if self.is_vertical_scroll_end or self.max_scroll_y == 0:
            self.scroll_end(animate=False)

    def add_reasoning_delta(self, text: str) -> None:
        if self._reasoning is None:
            self._reasoning = ReasoningBlock()
            self._add(self._reasoning)
        self._reasoning.append(text)

    async def add_assistant(self, text: str) -> None:
        await self.end_stream()
        if text.strip():
            self._add(AssistantMessage(text))

    async def add_tool(self, call_id: str, name: str, arguments: dict[str, Any] | str) -> ToolCard:
        await self.end_stream()
        card = ToolCard(call_id, name, arguments)
        self._tools[call_id] = card
        self._add(card)
        return card

    def tool(self, call_id: str) -> ToolCard | None:
        return self._tools.get(call_id)

    def add_tests(self, command: str, passed: int | None, failed: int | None, exit_code: int, ok: bool) -> None:
        self._add(TestSummary(command, passed, failed, exit_code, ok))

    def add_event(self, text: str) -> None:
        self._add(EventLine(text))

    def add_replaced(self, item_id: str, text: str, old_text: str) -> ReplacedLine:
        line = ReplacedLine(item_id, text, old_text)
        self._add(line)
        return line

    def add_diff(self, diff: str) -> None:
        self._add(DiffView(diff))

    async def add_notice(self, text: str, error: bool = False) -> None:
        await self.end_stream()
        self._add(Notice(text, error=error))

    async def clear(self) -> None:
        await self.end_stream()
        self._tools.clear()
        await self.remove_children()
