"""Tool schemas as the grammars see them: name -> parameters schema, with objects closed to unknown keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Options for llguidance's JSON compiler: unsupported keywords are ignored rather than failing the whole grammar
# (tool schemas come from MCP servers too), `\uXXXX` escapes are allowed as JSON allows them, and whitespace
# runs are capped so a model cannot stall in indentation.
JSON_OPTIONS = {"lenient": True, "json_allow_general_unicode_escapes": True, "whitespace_pattern": r"[\x20\x0A\x0D\x09]{0,20}"}


def tool_parameters(tools: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """`{name: parameters schema}` of OpenAI-style tools (`{"type": "function", "function": {...}}`) or bare ones."""
    out: dict[str, dict[str, Any]] = {}
    for tool in tools:
        fn = tool.get("function", tool)
        out[str(fn["name"])] = closed(fn.get("parameters") or {"type": "object"})
    return out


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")  # name -> schema
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames")


def closed(schema: Any) -> Any:
    """A copy where every object schema that lists `properties` and says nothing of `additionalProperties`
    refuses other keys: the JSON-schema default (allowed) would let a constrained call invent arguments.
    Only schema positions are walked; `const`, `enum` and `default` values are copied as they are."""
    if not isinstance(schema, Mapping):
        return schema
    out = dict(schema)
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), Mapping):
            out[key] = {name: closed(sub) for name, sub in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [closed(sub) for sub in out[key]]
    for key in _SCHEMA_ONE:
        if key in out:
            out[key] = closed(out[key])
    if "properties" in out and "additionalProperties" not in out and "patternProperties" not in out:
        out["additionalProperties"] = False
    return out


def rebased(schema: Any, prefix: str) -> Any:
    """A copy whose local `$ref`s (`#/...`) point below `prefix` (a JSON pointer like `#/$defs/tool3`): the
    schema can then live inside a larger document (several tools in one grammar) and still resolve its refs."""
    if isinstance(schema, list):
        return [rebased(s, prefix) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#"):
            out[key] = prefix + value[1:]
        elif key in ("const", "enum", "default", "examples"):
            out[key] = value
        else:
            out[key] = rebased(value, prefix)
    return out


def embedded(params: Mapping[str, Any], slot: str, pointer: str = "") -> dict[str, Any]:
    """A document holding `params` at `#/$defs/<slot>`, whose own schema is `params` at `pointer` below it."""
    return {"$defs": {slot: rebased(params, f"#/$defs/{slot}")}, "$ref": f"#/$defs/{slot}{pointer}"}
