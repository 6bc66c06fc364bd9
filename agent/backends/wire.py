"""What an OpenAI-compatible server may send, as pydantic models: every chunk is validated before use.

A server's answer is untrusted input. Anything that does not fit these shapes (a `data:` line holding a
list, `null` or a number, `choices` as a string, a tool-call `index` that is not a number) is turned
into one clear message by `parse_chunk`, never an AttributeError deeper down. Unknown fields are
ignored: servers add their own (`logprobs`, `system_fingerprint`, `timings`, ...).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionDelta(_Lenient):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Lenient):
    index: int | None = None  # "0" is accepted as 0 (pydantic's lax mode); "first" is a validation error
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None


class Delta(_Lenient):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None  # DeepSeek, vLLM and SGLang reasoning parsers
    reasoning: str | None = None  # some servers (and OpenRouter) name it so
    tool_calls: list[ToolCallDelta] | None = None

    @property
    def reasoning_text(self) -> str:
        return self.reasoning_content or self.reasoning or ""


class Choice(_Lenient):
    index: int = 0
    delta: Delta | None = None
    finish_reason: str | None = None


class PromptTokensDetails(_Lenient):
    cached_tokens: int | None = None


class WireUsage(_Lenient):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_cache_hit_tokens: int | None = None  # DeepSeek API
    prompt_tokens_details: PromptTokensDetails | None = None  # OpenAI, vLLM

    @property
    def cached_tokens(self) -> int:
        if self.prompt_cache_hit_tokens is not None:
            return self.prompt_cache_hit_tokens
        return (self.prompt_tokens_details.cached_tokens if self.prompt_tokens_details else None) or 0


class ChatChunk(_Lenient):
    object: str | None = None  # vLLM and SGLang stream `{"object": "error", "message": ...}` for a failure
    message: Any = None
    choices: list[Choice] | None = None
    usage: WireUsage | None = None
    error: Any = None  # servers put a dict or a plain string here when the generation fails mid-stream

    @property
    def failure(self) -> str | None:
        if self.error:
            return error_text(self.error)
        if self.object == "error":
            return error_text(self.message if self.message is not None else "unspecified error")
        return None


class ChunkProblem(Exception):
    """A `data:` line that is not a chat-completion chunk; the message says what was wrong, for the user."""


def parse_chunk(data: str) -> ChatChunk:
    try:
        raw = json.loads(data)
    except json.JSONDecodeError:
        raise ChunkProblem(f"the server sent a line that is not JSON: {data[:120]!r}") from None
    if not isinstance(raw, dict):
        raise ChunkProblem(f"the server sent {_json_type(raw)} where a chat-completion chunk (a JSON object) "
                           f"belongs: {data[:120]!r}")
    try:
        return ChatChunk.model_validate(raw)
    except ValidationError as exc:
        raise ChunkProblem(f"the server sent a malformed chat-completion chunk ({describe_validation(exc)}): "
                           f"{data[:120]!r}") from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"


def printable(text: str) -> str:
    """Server text fit for a one-line message: control characters and undecodable bytes shown as `?`."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def describe_validation(exc: ValidationError, limit: int = 3) -> str:
    """`choices: Input should be a valid list; ...`: where each problem is, in one line."""
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(part) for part in error["loc"]) or "the value"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def error_document(line: str) -> str | None:
    """The message of a bare JSON error document (`{"error": ...}`) sent where an event stream belongs."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError:
        return None
    if isinstance(raw, dict) and (raw.get("error") or raw.get("object") == "error"):
        return error_text(raw.get("error") or raw)
    return None


def error_text(error: Any) -> str:
    """The human part of an error body: `{"error": {"message": ...}}`, `{"error": "..."}`, `{"detail": ...}`."""
    if isinstance(error, dict):
        for key in ("message", "detail", "error"):
            if isinstance(error.get(key), (str, dict)):
                return error_text(error[key])
        return printable(json.dumps(error)[:300])
    return printable(str(error)[:300])
