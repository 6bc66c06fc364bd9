"""The headless report and the stream-json event union: pydantic models, whose JSON schemas are published."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, TypeAdapter

from .events import AgentEvent


class TestsReport(BaseModel):
    command: str | None = None
    ran: bool = False
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


class ContextReport(BaseModel):
    window: int  # tokens of context (the backend's figure, or --context-window)
    used: int  # tokens the last request took, the reserved output included
    compactions: int = 0  # made during this run


class DeniedAction(BaseModel):
    tool: str
    arguments: dict
    reason: str


class HeadlessReport(BaseModel):
    status: Literal["done", "not_done", "budget_exhausted", "backend_error"]
    exit_code: int
    summary: str
    patch: str
    files_changed: list[str]
    tests: TestsReport
    usage: UsageReport
    session_id: str
    denied_actions: list[DeniedAction]
    budget_exhausted: Literal["max_steps", "max_tokens", "timeout"] | None = None
    steps: int = 0
    malformed_tool_calls: int = 0
    model: str = ""
    error: str | None = None
    context: ContextReport | None = None


class ResultEvent(BaseModel):
    type: Literal["result"] = "result"
    report: HeadlessReport


StreamEvent = Annotated[Union[AgentEvent, ResultEvent], Field(discriminator="type")]


def report_schema() -> dict:
    return HeadlessReport.model_json_schema()


def events_schema() -> dict:
    schema = TypeAdapter(StreamEvent).json_schema()
    schema["title"] = "dsv4-code stream-json event (one per line)"
    return schema
