"""The conversation: a flat list of OpenAI-shaped chat messages."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..tools.call_checks import check_arguments, decode_arguments


class ToolCall(BaseModel):
    """One tool call as the model asked for it; `arguments` is the raw JSON text the model wrote."""

    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ValueError with a readable reason when they are not a JSON object."""
        # A ValueError too for JSON nested too deeply to decode, or holding a lone surrogate (which no
        # event, log or report could be written with).
        value = decode_arguments(self.arguments)
        check_arguments(value)
        if not isinstance(value, dict):
            raise ValueError(f"arguments must be a JSON object, got {type(value).__name__}")
        return value

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    # DeepSeek thinking mode rejects a follow-up request unless this is sent back on tool-call turns.
    reasoning_content: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """Only standard fields, plus reasoning_content when the server produced it."""
        out: dict[str, Any] = {"role": self.role, "content": self.content if self.content is not None else ""}
        if self.tool_calls:
            out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.reasoning_content:
            out["reasoning_content"] = self.reasoning_content
        return out


def system(text: str) -> Message:
    return Message(role="system", content=text)


def user(text: str) -> Message:
    return Message(role="user", content=text)


def tool_result(call_id: str, name: str, text: str) -> Message:
    return Message(role="tool", tool_call_id=call_id, name=name, content=text)
