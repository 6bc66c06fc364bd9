"""An MCP server's tool as one of ours (tools/base.py's Tool): its name, its JSON input schema, its result as text.

The loop and the permission policy know it only by its effects: an MCP tool runs code of someone else's
on this machine (or sends data to a remote server), so it is approved like a shell command (asked for in
`ask` mode, covered by "always allow" rules, denied headless without `--allow-shell`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from ...tools.base import Effect, Effects, ToolError, ToolResult
from ...tools.process import cap_output
from ...tools.workspace import Workspace
from .connection import CallFailed

PREFIX = "mcp"
MAX_NAME = 64  # what OpenAI-compatible servers accept for a function name
MAX_DESCRIPTION = 2000
MAX_SCHEMA_CHARS = 20_000  # every request carries the schemas: a server must not fill the context with one
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(server: str, tool: str) -> str:
    """`mcp__<server>__<tool>`, in the alphabet models accept (other characters become '_'), at most 64 characters."""
    return f"{PREFIX}__{server}__{_UNSAFE.sub('_', tool)}"[:MAX_NAME]


class SchemaProblem(ValueError):
    pass


def check_schema(schema: Any) -> dict[str, Any]:
    """The tool's input schema if it is a valid JSON schema for an object of arguments; else SchemaProblem."""
    from jsonschema import exceptions, validators

    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise SchemaProblem("its input schema is not a JSON schema of an object")
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise SchemaProblem(f"its input schema is longer than {MAX_SCHEMA_CHARS} characters")
    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as exc:
        raise SchemaProblem(f"its input schema is invalid: {exc.message}") from None
    return {"type": "object", **{k: v for k, v in schema.items() if k not in ("title", "$schema")}}


def args_model(schema: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model whose JSON schema is the server's and whose validation is the server's schema's."""
    from jsonschema import validators

    validator = validators.validator_for(schema)(schema)

    class McpArgs(BaseModel):
        model_config = ConfigDict(extra="allow")

        @model_validator(mode="before")
        @classmethod
        def _matches_schema(cls, data: Any) -> Any:
            problems = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
            if problems:
                first = problems[0]
                where = ".".join(map(str, first.absolute_path)) or "arguments"
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise PydanticCustomError("mcp_schema", "{where}: {problem}{more}",
                                          {"where": where, "problem": first.message, "more": more})
            return data

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return json.loads(json.dumps(schema))  # a copy: callers pop keys from it

    return McpArgs


class Caller(Protocol):
    def call(self, server: str, tool: str, arguments: dict[str, Any], *, cancel: threading.Event | None = None,
             deadline: float | None = None) -> Any: ...


class McpTool:
    effects: ClassVar[Effects] = frozenset({Effect.RUNS_COMMANDS})

    def __init__(self, caller: Caller, server: str, listed: Any, name: str, schema: dict[str, Any]) -> None:
        self.caller = caller
        self.server = server
        self.remote_name = listed.name
        self.name = name
        text = (listed.description or listed.title or listed.name).strip()
        self.description = f"{text[:MAX_DESCRIPTION]} (MCP server {server})"
        self.Args = args_model(schema)

    def run(self, args: BaseModel, workspace: Workspace) -> ToolResult:
        data = {"server": self.server, "tool": self.remote_name}
        try:
            result = self.caller.call(self.server, self.remote_name, args.model_dump(), cancel=workspace.cancel_event,
                                      deadline=workspace.deadline)
        except CallFailed as exc:
            raise ToolError(str(exc), data=data) from None
        text = cap_output(result_text(result))
        if result.is_error:
            return ToolResult(text=f"error: {text}", is_error=True, data=data)
        return ToolResult(text=text, data=data)


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return len(data) * 3 // 4


def result_text(result: Any) -> str:
    """What the model reads of a CallToolResult: text joined, images, audio and binary resources as a note."""
    from mcp import types

    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.ImageContent):
            parts.append(f"[image: {block.mime_type}, {_decoded_size(block.data)} bytes]")
        elif isinstance(block, types.AudioContent):
            parts.append(f"[audio: {block.mime_type}, {_decoded_size(block.data)} bytes]")
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, types.TextResourceContents):
                parts.append(resource.text)
            else:
                parts.append(f"[resource: {resource.uri}, {resource.mime_type or 'binary'}, "
                             f"{_decoded_size(resource.blob)} bytes]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource link: {block.uri}" + (f" ({block.name})" if block.name else "") + "]")
        else:
            parts.append(f"[{getattr(block, 'type', 'unknown')} content]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts) if parts else "(the tool returned no content)"
