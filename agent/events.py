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
    action: str  # remembered | forgotten | captured | pinned | unpinned | restored (an undone replacement)
    item_id: str
    text: str | None = None  # shown to the user for captured items; never kept for forgotten ones
    key: str | None = None
    replaces: str | None = None  # the earlier value this one superseded: shown as "replaces: ..."
    replaced_id: str | None = None
    undo: str | None = None  # with `replaces`: pass to AgentSession.undo_memory to bring the earlier value back


class UsageUpdate(BaseModel):
    type: Literal["usage_update"] = "usage_update"
    step: Usage
    total: Usage


class ContextUsage(BaseModel):
    """Before each request: tokens of the system message, tools, conversation and reserved output."""

    type: Literal["context_usage"] = "context_usage"
    used: int
    window: int
    share: float
    exact: bool = False  # counted with the model's tokenizer, not estimated


class Compacted(BaseModel):
    """The older part of the View was replaced by the task state and a summary (agent/compaction.py)."""

    type: Literal["compacted"] = "compacted"
    id: str
    first_kept_event_id: int
    summary: str
    source: Literal["model", "digest"]
    focus: str | None = None
    trigger: Literal["auto", "manual", "overflow"]
    tokens_before: int
    tokens_after: int
    summary_tokens: int = 0
    fallback_reason: str | None = None  # why the digest was used instead of a model summary


class CompactionSkipped(BaseModel):
    """A compaction was asked for (or due) but not made: nothing could be dropped, or the compacted View would not
    be smaller than the current one, which stays as it is."""

    type: Literal["compaction_skipped"] = "compaction_skipped"
    trigger: Literal["auto", "manual", "overflow"]
    reason: str
    tokens_before: int
    tokens_after: int | None = None  # what the compacted View would have used, when one was built
    summary_tokens: int = 0  # what a summary made for it cost anyway


class CompactionUndone(BaseModel):
    type: Literal["compaction_undone"] = "compaction_undone"
    id: str  # the compaction taken back; the View is the one before it
    restored_id: str | None = None  # the compaction active again, if any


class KVRestore(BaseModel):
    """An in-process request's prefill (agent/kv_wiring.py): how much of the prompt came from the Engram KV store
    (`tier`: ram-hot, ram-warm, disk-hot, disk-cold; "" when nothing did), from the engine's own cache, and how
    much was computed. Emitted when the store was consulted (the engine's own cache did not hold the prefix)."""

    type: Literal["kv_restore"] = "kv_restore"
    prompt_tokens: int
    restored_tokens: int = 0
    tier: str = ""
    reused_tokens: int = 0  # from the engine's own cache (restored ones included)
    prefill_tokens: int = 0  # computed by this prefill
    restore_s: float = 0.0
    prefill_s: float = 0.0  # the request's time to its first token, less the restore, tokenising and grammar
    first_token_s: float = 0.0  # from the request reaching the backend to its first token
    refused: list[str] = Field(default_factory=list)  # why snapshots were not used (a corrupt file, a mismatch)
    consulted: bool = False  # the store was looked up (the engine's own cache lacked the prefix)


class AgentError(BaseModel):
    type: Literal["agent_error"] = "agent_error"
    message: str


class TurnDone(BaseModel):
    type: Literal["turn_done"] = "turn_done"
    status: Literal["done", "max_steps", "max_tokens", "timeout", "backend_error", "cancelled"]
    summary: str


AgentEvent = Annotated[
    Union[
        CompactionSkipped,
        TurnStarted, StepStarted, AssistantDelta, AssistantReasoningDelta, AssistantMessage, ToolRequested,
        ToolDecision, ToolFinished, FileChanged, TestsRan, MemoryChanged, UsageUpdate, ContextUsage, Compacted,
        CompactionUndone, KVRestore, AgentError, TurnDone,
    ],
    Field(discriminator="type"),
]
