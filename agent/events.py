"""Events that backends stream (`Event`) and that the agent emits (`AgentEvent`).

Both are pydantic models with a `type` discriminator, so headless `stream-json` is one
`model_dump_json()` per line and `dsv4-code schema events` is generated from these classes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field

from .messages import ToolCall


# --- backend events ---------------------------------------------------------------------------


class TextDelta(BaseModel):
    type: Literal["text_delta"] = "text_delta"
    text: str


class ReasoningDelta(BaseModel):
    type: Literal["reasoning_delta"] = "reasoning_delta"
    text: str


class Usage(BaseModel):
    type: Literal["usage"] = "usage"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    estimated: bool = False  # the server reported no usage: counted from the request and the streamed text

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            estimated=self.estimated or other.estimated,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Done(BaseModel):
    type: Literal["done"] = "done"
    finish_reason: str = "stop"


class Error(BaseModel):
    """A backend failure; `kind` lets callers tell auth problems from network ones."""

    type: Literal["error"] = "error"
    message: str
    kind: Literal["auth", "http", "connect", "timeout", "stream_cut", "bad_response", "exhausted", "runtime"] = "http"
    status_code: int | None = None


Event = Annotated[Union[TextDelta, ReasoningDelta, ToolCall, Usage, Done, Error], Field(discriminator="type")]


# --- agent events -----------------------------------------------------------------------------


class TurnStarted(BaseModel):
    type: Literal["turn_started"] = "turn_started"
    session_id: str
    turn: int
    prompt: str


class StepStarted(BaseModel):
    type: Literal["step_started"] = "step_started"
    step: int


class AssistantDelta(BaseModel):
    type: Literal["assistant_delta"] = "assistant_delta"
    text: str


class AssistantReasoningDelta(BaseModel):
    type: Literal["reasoning_delta"] = "reasoning_delta"
    text: str


class AssistantMessage(BaseModel):
    type: Literal["assistant_message"] = "assistant_message"
    content: str
    tool_calls: list[ToolCall] = Field(default_factory=list)


class ToolRequested(BaseModel):
    type: Literal["tool_requested"] = "tool_requested"
    call_id: str
    name: str
    arguments: dict[str, Any] | str


class ToolDecision(BaseModel):
    type: Literal["tool_decision"] = "tool_decision"
    call_id: str
    name: str
    approved: bool
    reason: str = ""


class ToolFinished(BaseModel):
    type: Literal["tool_finished"] = "tool_finished"
    call_id: str
    name: str
    ok: bool
    summary: str
    data: dict[str, Any] = Field(default_factory=dict)


class FileChanged(BaseModel):
    type: Literal["file_changed"] = "file_changed"
    path: str
    action: Literal["created", "modified", "deleted"]


class TestsRan(BaseModel):
    type: Literal["tests_ran"] = "tests_ran"
    command: str
    passed: int | None
    failed: int | None
    exit_code: int
    ok: bool


class MemoryChanged(BaseModel):
    type: Literal["memory_changed"] = "memory_changed"
    action: str  # remembered | forgotten | captured | pinned | unpinned
    item_id: str
    text: str | None = None  # shown to the user for captured items; never kept for forgotten ones
    key: str | None = None


class UsageUpdate(BaseModel):
    type: Literal["usage_update"] = "usage_update"
    step: Usage
    total: Usage


class AgentError(BaseModel):
    type: Literal["agent_error"] = "agent_error"
    message: str


class TurnDone(BaseModel):
    type: Literal["turn_done"] = "turn_done"
    status: Literal["done", "max_steps", "max_tokens", "timeout", "backend_error", "cancelled"]
    summary: str


AgentEvent = Annotated[
    Union[
        TurnStarted, StepStarted, AssistantDelta, AssistantReasoningDelta, AssistantMessage, ToolRequested,
        ToolDecision, ToolFinished, FileChanged, TestsRan, MemoryChanged, UsageUpdate, AgentError, TurnDone,
    ],
    Field(discriminator="type"),
]
