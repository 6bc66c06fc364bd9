"""DeepSeek-V4 DSML tool calls as a grammar (the format of runtime/deepseek_v4/encoding.py):

    <｜DSML｜tool_calls>
    <｜DSML｜invoke name="NAME">
    <｜DSML｜parameter name="KEY" string="true">raw text</｜DSML｜parameter>
    <｜DSML｜parameter name="KEY" string="false">JSON</｜DSML｜parameter>
    </｜DSML｜invoke>
    </｜DSML｜tool_calls>

`｜DSML｜` is one special token, so the grammar names it by id. Parameters come in schema order (required ones
always, optional ones when the model wants them); a parameter whose schema admits a string may be written raw
(`string="true"`: any text; an enum or const gives its literals), every one may be written as JSON checked
against its schema (`$ref`s resolve against the tool's `$defs`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..deepseek_v4.encoding import CALLS_CLOSE, CALLS_OPEN, DSML, INVOKE_CLOSE, PARAM_CLOSE
from ..errors import RuntimeModelError
from ..tokenizer import Tokenizer
from .matcher import TriggeredGrammar, lark_string
from .schemas import JSON_OPTIONS, embedded, tool_parameters

# Raw string values: any text without the DSML marker (the tokenizer does not mark `｜DSML｜` special, so its
# token would otherwise pass as text); `<` and `</` are their own lexemes between text runs, so that the parser,
# not the lexer, decides whether `</` closes the parameter (followed by the marker) or belongs to the value.
_RAW_VALUE_RULES = ['raw_value: RAW_TEXT? (("<" | "</") RAW_TEXT?)*', f"RAW_TEXT: /[^<]+/ & ~/(?s:.*){DSML}(?s:.*)/"]


def _tag(marker: str, text: str) -> str:
    """A DSML tag as grammar items: `<｜DSML｜invoke>` -> `"<" DSML "invoke>"` (the marker is one token)."""
    head, tail = text.split(DSML, 1)
    return " ".join(part for part in (lark_string(head) if head else "", marker, lark_string(tail) if tail else "") if part)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        return node if isinstance(node, Mapping) else {}
    return schema


def _admits_string(schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    schema = _resolve(schema, root)
    if "const" in schema:
        return isinstance(schema["const"], str)
    if "enum" in schema:
        return any(isinstance(v, str) for v in schema["enum"])
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        return any(_admits_string(alt, root) for alt in alternatives if isinstance(alt, Mapping))
    kind = schema.get("type")
    return kind is None or kind == "string" or (isinstance(kind, list) and "string" in kind)


def _string_literals(schema: Mapping[str, Any], root: Mapping[str, Any]) -> list[str] | None:
    """The strings a raw value may be, when the schema lists them (enum/const); None for any text."""
    schema = _resolve(schema, root)
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return [v for v in schema["enum"] if isinstance(v, str)]
    return None


def _json_value(key: str, root: Mapping[str, Any]) -> str:
    # a standalone document per parameter; when the tool uses `$ref`s, its schema rides along so that they resolve
    pointer = "/properties/" + key.replace("~", "~0").replace("/", "~1")
    sub = embedded(root, "tool", pointer) if '"$ref"' in json.dumps(root) else root["properties"][key]
    doc = {"x-guidance": JSON_OPTIONS, **sub}
    return f"%json {json.dumps(doc, ensure_ascii=False)}"


def dsml_grammar(tools: Sequence[Mapping[str, Any]], dsml_token: int) -> str:
    """The Lark grammar for what follows `<｜DSML｜tool_calls>`: one or more invokes, then the closing tag."""
    marker = f"<[{dsml_token}]>"
    param_close = _tag(marker, PARAM_CLOSE) + ' "\\n"'
    rules = [f'start: "\\n" invoke+ {_tag(marker, CALLS_CLOSE)}']
    invokes = []
    for t, (name, params) in enumerate(tool_parameters(tools).items()):
        props = params.get("properties")
        required = set(params.get("required") or ())
        items = []
        if isinstance(props, Mapping):
            for p, (key, sub) in enumerate(props.items()):
                sub = sub if isinstance(sub, Mapping) else {}
                rule = f"t{t}_p{p}"
                head = _tag(marker, f'<{DSML}parameter name="{key}" string="')
                ways = [f'"false\\">" {_json_value(key, params)}']
                if _admits_string(sub, params):
                    literals = _string_literals(sub, params)
                    raw = "raw_value" if literals is None else "(" + " | ".join(lark_string(v) for v in literals) + ")"
                    ways.insert(0, f'"true\\">" {raw}')
                rules.append(f"{rule}: {head} ({' | '.join(ways)}) {param_close}")
                items.append(rule if key in required else f"{rule}?")
        else:  # no declared parameters: any names, any values
            rules.append(f't{t}_any: {_tag(marker, f"<{DSML}parameter name=")} "\\"" PARAM_NAME "\\" string=\\"" '
                         f'("true\\">" raw_value | "false\\">" %json {{}}) {param_close}')
            items.append(f"t{t}_any*")
        invoke_open = _tag(marker, f'<{DSML}invoke name="{name}">') + ' "\\n"'
        rules.append(f"t{t}: {invoke_open} {' '.join(items)} {_tag(marker, INVOKE_CLOSE)} \"\\n\"")
        invokes.append(f"t{t}")
    rules.append(f"invoke: {' | '.join(invokes)}")
    rules += _RAW_VALUE_RULES + [r'PARAM_NAME: /[^"<>\n]+/']
    return "\n".join(rules)


class DSMLToolCallConstraint(TriggeredGrammar):
    """Free text until `<｜DSML｜tool_calls>`, then only DSML blocks whose invokes match the tool schemas."""

    def __init__(self, tokenizer: Tokenizer, tools: Sequence[Mapping[str, Any]], *, inside_call: bool = False) -> None:
        dsml_token = tokenizer.token_to_id(DSML)
        if dsml_token is None:
            raise RuntimeModelError(f"the tokenizer has no {DSML!r} token: not a DeepSeek-V4 vocabulary")
        super().__init__(tokenizer, CALLS_OPEN, dsml_grammar(tools, dsml_token), inside=inside_call)
