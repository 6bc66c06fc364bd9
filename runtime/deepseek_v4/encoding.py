"""DeepSeek-V4 chat encoding (the DSML format) and the parser for what the model writes back.

Written from the format description: a conversation becomes one string
`BOS [effort prefix] system [reminders] <｜User｜>... <｜Assistant｜>[<think>reasoning]</think>reply EOS ...`.
Tools are advertised as a `## Tools` block (JSON schemas) appended to the system text (or to the
message that carries them); calls are `<｜DSML｜tool_calls>` blocks; results come back in a user turn
as `<tool_result>...</tool_result>`. Two modes: "chat" (the assistant turn opens with `</think>`) and
"thinking" (`<think>reasoning</think>`; reasoning of turns before the last user turn is dropped unless
the conversation has tools). Checked byte for byte against the upstream vectors in tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
REMINDER = "<｜latest_reminder｜>"
DSML = "｜DSML｜"
CALLS_OPEN = f"<{DSML}tool_calls>"
CALLS_CLOSE = f"</{DSML}tool_calls>"
INVOKE_CLOSE = f"</{DSML}invoke>"
PARAM_CLOSE = f"</{DSML}parameter>"
RESULT_OPEN, RESULT_CLOSE = "<tool_result>", "</tool_result>"
TASK_TOKENS = ("action", "query", "authority", "domain", "title", "read_url")

EFFORT_MAX_PREFIX = (
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root "
    "cause, rigorously stress-testing your logic against all potential paths, edge cases, and adversarial "
    "scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, considered "
    "alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n"
)

_TOOLS_HEAD = (
    "\n\n## Tools\n\n"
    "You have access to a set of tools to help answer the user's question. You can invoke tools by writing a "
    f'"{CALLS_OPEN}" block like the following:\n\n'
    f"{CALLS_OPEN}\n"
    f'<{DSML}invoke name="$TOOL_NAME">\n'
    f'<{DSML}parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE{PARAM_CLOSE}\n'
    "...\n"
    f"{INVOKE_CLOSE}\n"
    f'<{DSML}invoke name="$TOOL_NAME2">\n'
    "...\n"
    f"{INVOKE_CLOSE}\n"
    f"{CALLS_CLOSE}\n\n"
    'String parameters should be specified as is and set `string="true"`. For all other types (numbers, '
    'booleans, arrays, objects), pass the value in JSON format and set `string="false"`.\n\n'
    f"If thinking_mode is enabled (triggered by {THINK_OPEN}), you MUST output your complete reasoning inside "
    f"{THINK_OPEN}...{THINK_CLOSE} BEFORE any tool calls or final response.\n\n"
    f"Otherwise, output directly after {THINK_CLOSE} with tool calls or final response.\n\n"
    "### Available Tool Schemas\n\n"
)
_TOOLS_TAIL = "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n"


def tools_block(tools: Sequence[Mapping[str, Any]]) -> str:
    """The `## Tools` section advertising `tools` (OpenAI-style `{"type": "function", "function": {...}}` or bare)."""
    schemas = [json.dumps(dict(t.get("function", t)), ensure_ascii=False) for t in tools]
    return _TOOLS_HEAD + "\n".join(schemas) + _TOOLS_TAIL


def _arguments(call: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        args = json.loads(args) if args.strip() else {}
    return str(fn["name"]), dict(args)


def encode_tool_calls(calls: Sequence[Mapping[str, Any]]) -> str:
    """A DSML tool-call block (without the leading blank line the assistant turn puts before it)."""
    out = [CALLS_OPEN, "\n"]
    for call in calls:
        name, args = _arguments(call)
        out.append(f'<{DSML}invoke name="{name}">\n')
        for key, value in args.items():
            if isinstance(value, str):
                out.append(f'<{DSML}parameter name="{key}" string="true">{value}{PARAM_CLOSE}\n')
            else:
                text = json.dumps(value, ensure_ascii=False)
                out.append(f'<{DSML}parameter name="{key}" string="false">{text}{PARAM_CLOSE}\n')
        out.append(f"{INVOKE_CLOSE}\n")
    out.append(CALLS_CLOSE)
    return "".join(out)


def _content(msg: Mapping[str, Any]) -> str:
    content = msg.get("content")
    if content is None:
        return ""
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return str(content)


def encode_messages(
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    thinking_mode: str = "chat",
    drop_thinking: bool = True,
    reasoning_effort: str | None = None,
    add_generation_prompt: bool | None = None,
) -> str:
    """Render a conversation. `add_generation_prompt` (default: when the last message is not the assistant's)
    opens the next assistant turn, with `<think>` in thinking mode and `</think>` in chat mode."""
    if thinking_mode not in ("chat", "thinking"):
        raise ValueError(f"thinking_mode must be 'chat' or 'thinking', not {thinking_mode!r}")
    if reasoning_effort not in (None, "high", "max"):
        raise ValueError(f"reasoning_effort must be None, 'high' or 'max', not {reasoning_effort!r}")
    msgs = [dict(m) for m in messages]
    has_tools = bool(tools) or any(m.get("tools") for m in msgs)
    last_user = max((i for i, m in enumerate(msgs) if m.get("role") in ("user", "developer")), default=-1)
    thinking = thinking_mode == "thinking"
    out = [BOS]
    if thinking and reasoning_effort == "max":
        out.append(EFFORT_MAX_PREFIX)
    system_done = False
    pending_task: str | None = None
    i = 0
    while i < len(msgs):
        m = msgs[i]
        role = m.get("role")
        if role == "system":
            out.append(_content(m))
            if m.get("tools"):
                out.append(tools_block(m["tools"]))
            if tools and not system_done:
                out.append(tools_block(tools))
            system_done = True
        elif role == "latest_reminder":
            out.append(REMINDER + _content(m))
        elif role in ("user", "developer"):
            if tools and not system_done:
                out.append(tools_block(tools)[2:] if len(out) == 1 else tools_block(tools))
                system_done = True
            text = _content(m)
            if m.get("tools"):
                text += tools_block(m["tools"])
            out.append(USER + text)
            pending_task = m.get("task")
        elif role == "tool":
            # consecutive tool results form one user turn, in the order of the calls they answer
            results = []
            while i < len(msgs) and msgs[i].get("role") == "tool":
                results.append(msgs[i])
                i += 1
            order = _call_order(msgs, i - len(results))
            if order:
                results.sort(key=lambda r: order.get(r.get("tool_call_id"), len(order)))
            out.append(USER + "".join(f"{RESULT_OPEN}{_content(r)}{RESULT_CLOSE}" for r in results))
            pending_task = None
            continue
        elif role == "assistant":
            keep = thinking and (i > last_user or has_tools or not drop_thinking)
            out.append(ASSISTANT)
            if keep:
                out.append(THINK_OPEN + str(m.get("reasoning_content") or "") + THINK_CLOSE)
            else:
                out.append(THINK_CLOSE)
            if pending_task:
                out.append(f"<｜{pending_task}｜>")
                pending_task = None
            out.append(_content(m))
            if m.get("tool_calls"):
                out.append("\n\n" + encode_tool_calls(m["tool_calls"]))
            if m.get("prefix"):  # an unfinished assistant turn the model continues
                i += 1
                continue
            out.append(EOS)
        else:
            raise ValueError(f"unknown role {role!r}")
        i += 1
    if add_generation_prompt is None:
        add_generation_prompt = not msgs or msgs[-1].get("role") != "assistant"
    if add_generation_prompt:
        out.append(ASSISTANT + (THINK_OPEN if thinking else THINK_CLOSE))
        if pending_task:
            out.append(f"<｜{pending_task}｜>")
    return "".join(out)


def _call_order(msgs: Sequence[Mapping[str, Any]], first_tool: int) -> dict[Any, int]:
    for j in range(first_tool - 1, -1, -1):
        if msgs[j].get("role") == "assistant":
            return {c.get("id"): k for k, c in enumerate(msgs[j].get("tool_calls") or []) if c.get("id") is not None}
    return {}


# --- parsing what the model wrote -------------------------------------------------------------------


@dataclass(slots=True)
class ParsedCall:
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class ParsedMessage:
    content: str
    reasoning_content: str = ""
    tool_calls: list[ParsedCall] = field(default_factory=list)
    finished: bool = False  # EOS seen


_INVOKE = re.compile(rf'<{DSML}invoke name="([^"]*)">\n?(.*?){re.escape(INVOKE_CLOSE)}', re.S)
_PARAM = re.compile(rf'<{DSML}parameter name="([^"]*)" string="(true|false)">(.*?){re.escape(PARAM_CLOSE)}', re.S)


def parse_tool_calls(block: str) -> list[ParsedCall]:
    calls = []
    for name, body in _INVOKE.findall(block):
        args: dict[str, Any] = {}
        for key, is_str, value in _PARAM.findall(body):
            if is_str == "true":
                args[key] = value
            else:
                try:
                    args[key] = json.loads(value)
                except json.JSONDecodeError:
                    args[key] = value
        calls.append(ParsedCall(name, args))
    return calls


def parse_completion(text: str, *, thinking_mode: str = "chat") -> ParsedMessage:
    """Split the text generated after `<｜Assistant｜><think>` (thinking) or `<｜Assistant｜></think>` (chat)
    into reasoning, reply and DSML tool calls."""
    finished = False
    if EOS in text:
        text, finished = text.split(EOS, 1)[0], True
    reasoning = ""
    if text.startswith(THINK_OPEN):
        text = text[len(THINK_OPEN):]
        thinking_mode = "thinking"
    if thinking_mode == "thinking":
        if THINK_CLOSE in text:
            reasoning, text = text.split(THINK_CLOSE, 1)
        else:
            return ParsedMessage("", text, [], finished)
    elif text.startswith(THINK_CLOSE):
        text = text[len(THINK_CLOSE):]
    calls: list[ParsedCall] = []
    if CALLS_OPEN in text:
        text, block = text.split(CALLS_OPEN, 1)
        calls = parse_tool_calls(block)
        if text.endswith("\n\n"):
            text = text[:-2]
    return ParsedMessage(text, reasoning, calls, finished)


# --- streaming and the runtime's chat interface -----------------------------------------------------


class DSMLStreamParser:
    """Incremental parser for the in-process backend: feed decoded text pieces, get TextPiece (reply text;
    reasoning is dropped unless `keep_reasoning`) and ParsedToolCall (JSON arguments) as soon as known.
    The text it receives starts right after the generation prompt (`...<｜Assistant｜></think>` in chat mode)."""

    def __init__(self, *, thinking: bool = False, keep_reasoning: bool = False) -> None:
        self.buf = ""
        self.in_reasoning = thinking
        self.keep_reasoning = keep_reasoning
        self.in_calls = False

    def feed(self, text: str) -> list:
        from ..tool_calls import TextPiece

        self.buf += text
        out: list = []
        while True:
            if self.in_reasoning:
                i = self.buf.find(THINK_CLOSE)
                if i < 0:
                    keep = _partial(self.buf, THINK_CLOSE)
                    if self.keep_reasoning and len(self.buf) > keep:
                        out.append(TextPiece(self.buf[: len(self.buf) - keep]))
                    self.buf = self.buf[len(self.buf) - keep:]
                    return out
                if self.keep_reasoning and i:
                    out.append(TextPiece(self.buf[:i]))
                self.buf, self.in_reasoning = self.buf[i + len(THINK_CLOSE):], False
                continue
            if self.in_calls:
                i = self.buf.find(CALLS_CLOSE)
                if i < 0:
                    return out
                out.extend(_as_calls(self.buf[:i]))
                self.buf, self.in_calls = self.buf[i + len(CALLS_CLOSE):], False
                continue
            i = self.buf.find(CALLS_OPEN)
            if i >= 0:
                text = self.buf[:i]
                if text.endswith("\n\n"):
                    text = text[:-2]
                if text:
                    out.append(TextPiece(text))
                self.buf, self.in_calls = self.buf[i + len(CALLS_OPEN):], True
                continue
            # hold back a possible start of the block (and the blank line before it)
            keep = max(_partial(self.buf, CALLS_OPEN), _partial(self.buf, "\n\n" + CALLS_OPEN))
            text = self.buf[: len(self.buf) - keep]
            if text:
                out.append(TextPiece(text))
            self.buf = self.buf[len(self.buf) - keep:]
            return out

    def finish(self) -> list:
        from ..tool_calls import TextPiece

        out: list = []
        if self.in_calls:
            out.extend(_as_calls(self.buf))  # an unterminated block: take the complete invokes
        elif self.buf and (not self.in_reasoning or self.keep_reasoning):
            out.append(TextPiece(self.buf))
        self.buf = ""
        return out


def _partial(text: str, tag: str) -> int:
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def _as_calls(block: str) -> list:
    from ..tool_calls import ParsedToolCall

    return [ParsedToolCall(c.name, json.dumps(c.arguments, ensure_ascii=False)) for c in parse_tool_calls(block)]


class V4ChatFormat:
    """The runtime's chat interface (`render`, `prompt_ids`) for V4 models: DSML encoding, chat mode by default."""

    native_tools = True

    def __init__(self, tokenizer, *, thinking_mode: str = "chat", reasoning_effort: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.thinking_mode = thinking_mode
        self.reasoning_effort = reasoning_effort

    def render(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None) -> str:
        return encode_messages(messages, tools=list(tools) if tools else None, thinking_mode=self.thinking_mode,
                               reasoning_effort=self.reasoning_effort, add_generation_prompt=True)

    def prompt_ids(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None) -> list[int]:
        return self.tokenizer.encode(self.render(messages, tools))

    def tool_parser(self) -> DSMLStreamParser:
        return DSMLStreamParser(thinking=self.thinking_mode == "thinking")

    def tool_constraint(self, tokenizer, tools: Sequence[Mapping[str, Any]]):
        """DSML calls guided by a grammar of the tool schemas (llguidance): a `DSMLToolCallConstraint`."""
        from ..constrain import DSMLToolCallConstraint

        return DSMLToolCallConstraint(tokenizer, tools)
