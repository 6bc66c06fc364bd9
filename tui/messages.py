"""Messages workers post to the UI; handlers on the UI thread turn them into widget changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.message import Message


class AgentReady(Message):
    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session


class AgentFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class AgentEventPosted(Message):
    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class ApprovalNeeded(Message):
    def __init__(self, request: Any, reply: Callable[[bool], None]) -> None:
        super().__init__()
        self.request = request
        self.reply = reply


class TurnFinished(Message):
    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result
