"""The headless report and the stream-json event union: pydantic models, whose JSON schemas are published."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter

from .events import AgentEvent


class TestsReport(BaseModel):
    command: str | None = None
    ran: bool = False
    outcome: Literal["passed", "failed", "could_not_run"] | None = None  # could_not_run: not failing tests
    environment: str | None = None  # which interpreter or tool ran them
    ok: bool | None = None
    passed: int | None = None
    failed: int | None = None
    exit_code: int | None = None
    output_tail: str = ""


class UsageReport(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False  # the server sent no usage: counted from the request and the streamed text


class ContextReport(BaseModel):
    window: int  # tokens of context (the backend's figure, or --context-window)
    used: int  # tokens the last request took, the reserved output included
    compactions: int = 0  # made during this run


class KVReport(BaseModel):
    """Engram KV in this run (in-process backends): prompt tokens restored from snapshots and from which tier."""

    restored_tokens: int = 0  # from the snapshot store (a resume, a new session in the same repository)
    tier: str = ""  # where the first restore came from: ram-hot, ram-warm, disk-hot, disk-cold ("" none)
    prefill_tokens: int = 0  # prompt tokens computed, over every request of the run
    reused_tokens: int = 0  # prompt tokens not computed: restored, or still in the engine's own cache
    refused: list[str] = Field(default_factory=list)  # why snapshots were not used (a corrupt file, a mismatch)
    snapshots_saved: int = 0


class TimingReport(BaseModel):
    first_token_s: float | None = None  # from the run's first request reaching the backend to its first token
    restore_s: float = 0.0  # finding, reading, verifying and importing snapshots
    prefill_s: float = 0.0  # computing the prompts, over every request


class DeniedAction(BaseModel):
    tool: str
    arguments: dict
    reason: str


REPORT_SCHEMA_VERSION = 2  # 2: schema_version, duration_s, turns, error_kind, status "error", tests.outcome


class HeadlessReport(BaseModel):
    schema_version: int = REPORT_SCHEMA_VERSION
    status: Literal["done", "not_done", "budget_exhausted", "backend_error", "error"]
    exit_code: int
    summary: str
    patch: str
    files_changed: list[str]
    tests: TestsReport
    usage: UsageReport
    session_id: str | None  # None when the run failed before a session opened
    denied_actions: list[DeniedAction]
    duration_s: float = 0.0
    turns: int = 0  # turns of the session so far (a resumed session counts its earlier ones)
    # why the run ended badly: usage | config | backend | internal | budget | tests | denied; None when done
    error_kind: str | None = None
    budget_exhausted: Literal["max_steps", "max_tokens", "timeout"] | None = None
    steps: int = 0
    malformed_tool_calls: int = 0
    model: str = ""
    error: str | None = None
    context: ContextReport | None = None
    kv: KVReport | None = None  # None for backends without an in-process engine
    timing: TimingReport | None = None


class InitEvent(BaseModel):
    """The first line of stream-json: what this run is about to use."""

    type: Literal["init"] = "init"
    version: str
    schema_version: int = REPORT_SCHEMA_VERSION
    session_id: str
    model: str
    tools: list[str]
    permission_mode: str
    base_commit: str | None  # HEAD when the run started (None in a repository without commits)


class ResultEvent(BaseModel):
    type: Literal["result"] = "result"
    report: HeadlessReport


StreamEvent = Annotated[Union[InitEvent, AgentEvent, ResultEvent], Field(discriminator="type")]


def report_schema() -> dict:
    return HeadlessReport.model_json_schema()


def events_schema() -> dict:
    schema = TypeAdapter(StreamEvent).json_schema()
    schema["title"] = "dsv4-code stream-json event (one per line)"
    return schema
