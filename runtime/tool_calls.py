"""Tool-call formats. Hermes (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`) serves llama-family
templates; DSML (DeepSeek-V4) registers here later.

A format knows how to describe tools to a model whose template cannot, how to write past calls and
results back into the conversation, and how to parse calls out of streamed text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"

HERMES_TOOLS_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


@dataclass(slots=True)
class TextPiece:
    text: str


@dataclass(slots=True)
class ParsedToolCall:
    name: str
    arguments: str  # JSON text of an object


class HermesParser:
    """Splits streamed text into plain text and tool calls; text that may start a tag is held back until it is decided."""

    def __init__(self) -> None:
        self.buffer = ""
        self.in_call = False
        self.after_call = False  # the newline that templates put after a closing tag is not text

    def feed(self, text: str) -> list[TextPiece | ParsedToolCall]:
        self.buffer += text
        out: list[TextPiece | ParsedToolCall] = []
        while True:
            if not self.in_call:
                if self.after_call and self.buffer:
                    self.buffer, self.after_call = self.buffer.removeprefix("\n"), False
                at = self.buffer.find(HERMES_OPEN)
                if at < 0:
                    keep = _partial_suffix(self.buffer, HERMES_OPEN)
                    _emit_text(out, self.buffer[: len(self.buffer) - keep])
                    self.buffer = self.buffer[len(self.buffer) - keep :]
                    return out
                _emit_text(out, self.buffer[:at])
                self.buffer, self.in_call = self.buffer[at + len(HERMES_OPEN) :], True
            at = self.buffer.find(HERMES_CLOSE)
            if at < 0:
                return out
            out.append(_parse_call(self.buffer[:at]))
            self.buffer, self.in_call, self.after_call = self.buffer[at + len(HERMES_CLOSE) :], False, True

    def finish(self) -> list[TextPiece | ParsedToolCall]:
        """End of stream: a call whose closing tag never came is still a call if its JSON is complete."""
        rest, self.buffer = self.buffer, ""
        if not self.in_call:
            return [TextPiece(rest)] if rest else []
        self.in_call = False
        call = _parse_call(rest)
        return [call] if isinstance(call, ParsedToolCall) else [TextPiece(HERMES_OPEN + rest)]


def _parse_call(body: str) -> TextPiece | ParsedToolCall:
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return TextPiece(HERMES_OPEN + body + HERMES_CLOSE)  # not a call the agent can run: show it as text
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return TextPiece(HERMES_OPEN + body + HERMES_CLOSE)
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):  # some models double-encode
        return ParsedToolCall(value["name"], args)
    return ParsedToolCall(value["name"], json.dumps(args, ensure_ascii=False))


def _emit_text(out: list[TextPiece | ParsedToolCall], text: str) -> None:
    if text:
        out.append(TextPiece(text))


def _partial_suffix(text: str, tag: str) -> int:
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def hermes_messages(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rewrite OpenAI-shaped messages for a template that knows nothing of tools (as Qwen2.5's template would render them).

    Tool schemas go into the system message, past calls into assistant text, results into user turns
    wrapped in <tool_response>; consecutive results share one turn.
    """
    out: list[dict[str, Any]] = []
    if tools:
        block = HERMES_TOOLS_PROMPT.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))
        if messages and messages[0].get("role") == "system":
            out.append({"role": "system", "content": f"{messages[0].get('content') or ''}\n\n{block}".lstrip()})
            messages = messages[1:]
        else:
            out.append({"role": "system", "content": block})
    for m in messages:
        role, content = m.get("role"), m.get("content") or ""
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            for call in m["tool_calls"]:
                fn = call.get("function", call)
                args = fn.get("arguments", "{}")
                args_obj = json.loads(args) if isinstance(args, str) and args.strip() else args or {}
                calls.append(f"{HERMES_OPEN}\n" + json.dumps({"name": fn["name"], "arguments": args_obj}, ensure_ascii=False) + f"\n{HERMES_CLOSE}")
            out.append({"role": "assistant", "content": "\n".join(([content] if content else []) + calls)})
        elif role == "tool":
            result = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1].get("_tool_turn"):
                out[-1]["content"] += "\n" + result
            else:
                out.append({"role": "user", "content": result, "_tool_turn": True})
        else:
            out.append({"role": role, "content": content})
    for m in out:
        m.pop("_tool_turn", None)
    return out
