"""From OpenAI-shaped messages to prompt tokens, with the model's own chat template and tool-call format."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .chat_template import render_chat_template, template_handles_tools
from .tokenizer import Tokenizer
from .tool_calls import HermesParser, hermes_messages

if TYPE_CHECKING:
    from .constrain import ToolCallConstraint

# For checkpoints that ship no template (base models): ChatML, which most small instruct models know.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ChatFormat:
    """The model's Jinja chat template; tool calls in the Hermes `<tool_call>` JSON syntax."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.template = tokenizer.chat_template or CHATML_TEMPLATE
        self.native_tools = template_handles_tools(self.template)

    def render(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None) -> str:
        if self.native_tools:
            msgs, tools_arg = [_native(m) for m in messages], list(tools) if tools else None
        else:
            msgs, tools_arg = hermes_messages(messages, tools or []), None
        return render_chat_template(
            self.template, msgs, tools=tools_arg, add_generation_prompt=True, special_tokens=self.tokenizer.special_tokens_map()
        )

    def prompt_ids(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None) -> list[int]:
        # templates write BOS themselves when the model wants it, so none is added here (as transformers does)
        return self.tokenizer.encode(self.render(messages, tools))

    def tool_parser(self) -> HermesParser:
        return HermesParser()

    def tool_constraint(self, tokenizer: Tokenizer, tools: Sequence[Mapping[str, Any]]) -> ToolCallConstraint:
        """Hermes calls guided by a grammar of the tool schemas (llguidance)."""
        from .constrain import ToolCallConstraint

        return ToolCallConstraint(tokenizer, tools)


def _native(message: Mapping[str, Any]) -> dict[str, Any]:
    """Templates that render tool calls expect `arguments` as a mapping, not the JSON text OpenAI sends."""
    m = dict(message)
    if m.get("tool_calls"):
        calls = []
        for call in m["tool_calls"]:
            fn = dict(call.get("function", call))
            if isinstance(fn.get("arguments"), str):
                fn["arguments"] = json.loads(fn["arguments"] or "{}")
            calls.append({"type": "function", "function": fn, **({"id": call["id"]} if "id" in call else {})})
        m["tool_calls"] = calls
    if m.get("content") is None:
        m["content"] = ""
    return m
