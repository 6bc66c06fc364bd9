"""What every tool is: a pydantic args model, a JSON schema derived from it, and a `run` that returns a ToolResult.

A tool signals a problem the model can act on by raising `ToolError`; the toolbox turns it into an
error result, so no tool failure ever leaves the agent loop as an exception.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, Field

from .workspace import Workspace

ToolKind = Literal["read", "edit", "shell", "memory"]


class ToolError(Exception):
    """A failure reported back to the model as the tool's result; `data` reaches the UI and reports."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data or {}


class ToolResult(BaseModel):
    text: str  # what the model reads
    summary: str = ""  # one line for the UI; the first line of `text` when empty
    data: dict[str, Any] = Field(default_factory=dict)  # structured detail for the UI and reports
    is_error: bool = False
    files_changed: list[str] = Field(default_factory=list)  # repo-relative paths


class Tool(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[ToolKind]
    Args: ClassVar[type[BaseModel]]

    def run(self, args: Any, workspace: Workspace) -> ToolResult: ...


def openai_schema(tool: type[Tool] | Tool) -> dict[str, Any]:
    parameters = tool.Args.model_json_schema()
    parameters.pop("title", None)
    for prop in parameters.get("properties", {}).values():
        prop.pop("title", None)
    return {"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": parameters}}
