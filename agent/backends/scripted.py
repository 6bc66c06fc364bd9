"""A model that plays back a queue of replies: first-class, for tests, demos and evals."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from ..events import Done, Error, Event, TextDelta, ReasoningDelta, Usage
from ..messages import Message, ToolCall
from .base import GenerationParams, estimate_tokens
from .script import ScriptedTurn, chunk_text


SCRIPTED_SUMMARY = "Scripted summary: the earlier steps are in the session log."


class ScriptedBackend:
    exact_token_count = False  # estimate_tokens, not a tokenizer

    def __init__(self, turns: Sequence[ScriptedTurn], model_name: str = "scripted", context_window: int = 131072,
                 summary: str | None = SCRIPTED_SUMMARY) -> None:
        self._turns = list(turns)
        # A request without tools is a compaction's summary request: it gets `summary` ("" plays a model that returns
        # nothing) and the script is not consumed, so a script need not know when compaction runs; None plays it
        # from the script like any other request.
        self.summary = summary
        self.summary_requests: list[list[Message]] = []
        self._next = 0
        self._lock = threading.Lock()
        self._model_name = model_name
        self._context_window = context_window
        self.requests: list[list[Message]] = []  # what the agent sent, for tests and evals

    @property
    def model_id(self) -> str:
        return self._model_name

    @property
    def context_window(self) -> int:
        return self._context_window

    @property
    def remaining(self) -> int:
        return len(self._turns) - self._next

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return estimate_tokens(messages)

    def cancel(self) -> None:
        """Nothing to stop: a scripted reply is produced at once (the loop checks its own cancel flag between events)."""

    def drop_cache(self) -> None:
        """Nothing cached: each reply is played from the script."""

    def stream(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], params: GenerationParams) -> Iterator[Event]:
        if not tools and self.summary is not None:
            self.summary_requests.append(list(messages))
            for piece in chunk_text(self.summary):
                yield TextDelta(text=piece)
            yield Usage(prompt_tokens=estimate_tokens(messages), completion_tokens=len(self.summary) // 4)
            yield Done()
            return
        with self._lock:
            index = self._next
            self._next += 1
        self.requests.append(list(messages))
        if index >= len(self._turns):
            yield Error(kind="exhausted", message=f"the scripted model has no reply left (it had {len(self._turns)})")
            return
        turn = self._turns[index]
        if turn.reasoning_content:
            yield ReasoningDelta(text=turn.reasoning_content)
        for piece in chunk_text(turn.content):
            yield TextDelta(text=piece)
        for number, call in enumerate(turn.tool_calls):
            yield ToolCall(id=f"call_{index}_{number}", name=call.name, arguments=call.raw_arguments())
        completion = estimate_tokens([Message(role="assistant", content=turn.content,
                                              tool_calls=[ToolCall(id="x", name=c.name, arguments=c.raw_arguments()) for c in turn.tool_calls])])
        yield Usage(prompt_tokens=estimate_tokens(messages), completion_tokens=completion)
        yield Done(finish_reason="tool_calls" if turn.tool_calls else "stop")
