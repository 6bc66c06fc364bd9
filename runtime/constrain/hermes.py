"""Hermes tool calls: `<tool_call>{"name": <a tool>, "arguments": <its parameters>}</tool_call>`, as a grammar."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..tokenizer import Tokenizer
from ..tool_calls import HERMES_CLOSE, HERMES_OPEN
from .matcher import TriggeredGrammar, lark_string
from .schemas import JSON_OPTIONS, rebased, tool_parameters


def call_schema(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One object per tool: its name as a constant, then its arguments (llguidance keeps property order)."""
    alternatives, definitions = [], {}
    for i, (name, params) in enumerate(tool_parameters(tools).items()):
        # each tool's schema lives under $defs/tool<i>, its own $refs rebased there (`multi_edit` uses `$defs`)
        definitions[f"tool{i}"] = rebased(params, f"#/$defs/tool{i}")
        alternatives.append({"type": "object", "properties": {"name": {"const": name}, "arguments": {"$ref": f"#/$defs/tool{i}"}},
                             "required": ["name", "arguments"], "additionalProperties": False})
    return {"x-guidance": JSON_OPTIONS, "$defs": definitions, "anyOf": alternatives}


def hermes_grammar(tools: Sequence[Mapping[str, Any]]) -> str:
    """The Lark grammar for what follows the opening tag: the call's JSON, then the closing tag."""
    return "\n".join([
        f"start: WS call WS {lark_string(HERMES_CLOSE)}",
        r"WS: /[ \t\r\n]{0,4}/",
        f"call: %json {json.dumps(call_schema(tools), ensure_ascii=False)}",
    ])


class ToolCallConstraint(TriggeredGrammar):
    """Free text until `<tool_call>`, then only calls that parse and match the tool schemas."""

    def __init__(self, tokenizer: Tokenizer, tools: Sequence[Mapping[str, Any]], *, inside_call: bool = False) -> None:
        """`inside_call`: the prompt already ends with the opening tag (a forced call), so constrain from the first token."""
        super().__init__(tokenizer, HERMES_OPEN, hermes_grammar(tools), inside=inside_call)
