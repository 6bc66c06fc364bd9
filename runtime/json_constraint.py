"""JSON-schema-constrained decoding of tool calls, by logit masking.

Once the model opens a call (`<tool_call>`), every candidate token is checked against the automaton of
`json_fsm.py` for `{"name": <one of the tools>, "arguments": <that tool's parameters schema>}` followed
by `</tool_call>`; tokens that would break it are masked out. Even a 135M model then emits calls that
parse and validate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tokenizers.decoders import DecodeStream

from .json_fsm import MAX_WS, WS, Object, Stack, advance
from .tokenizer import Tokenizer
from .tool_calls import HERMES_CLOSE, HERMES_OPEN

__all__ = ["ToolCallConstraint", "advance", "tool_call_stack"]


class Tail:
    """After the call's JSON: optional whitespace, then the closing tag."""

    __slots__ = ("pos", "ws")

    def __init__(self, pos: int = 0, ws: int = 0) -> None:
        self.pos, self.ws = pos, ws

    def feed(self, ch: str) -> Any:
        if self.pos == 0 and ch in WS:
            return (Tail(0, self.ws + 1),) if self.ws < MAX_WS else None
        if HERMES_CLOSE[self.pos] != ch:
            return None
        return () if self.pos + 1 == len(HERMES_CLOSE) else (Tail(self.pos + 1, self.ws),)


def tool_call_stack(tools: Sequence[Mapping[str, Any]]) -> Stack:
    schemas = {}
    for tool in tools:
        fn = tool.get("function", tool)
        schemas[fn["name"]] = fn.get("parameters") or {"type": "object"}
    root = Object({"name": None, "arguments": None}, frozenset({"name", "arguments"}), False, choose="name", dependent=schemas)
    return (Tail(), _RootValue(root))


class _RootValue:
    __slots__ = ("root", "ws")

    def __init__(self, root: Object, ws: int = 0) -> None:
        self.root, self.ws = root, ws

    def feed(self, ch: str) -> Any:
        if ch in WS:
            return (_RootValue(self.root, self.ws + 1),) if self.ws < MAX_WS else None
        return (self.root,) if ch == "{" else None


class ToolCallConstraint:
    """A logits processor for `Engine.generate`: free text until `<tool_call>`, then only valid calls."""

    TOP_K = 64

    def __init__(self, tokenizer: Tokenizer, tools: Sequence[Mapping[str, Any]], *, inside_call: bool = False) -> None:
        """`inside_call`: the prompt already ends with the opening tag (a forced call), so constrain from the first token."""
        self.tokenizer, self.tools = tokenizer, list(tools)
        self.pieces = tokenizer.pieces()
        self.stack: Stack | None = tool_call_stack(self.tools) if inside_call else None  # None: free text
        self.tail, self.n_seen = "", 0
        self.stream = DecodeStream(skip_special_tokens=False)

    def __call__(self, logits: torch.Tensor, generated: list[int]) -> torch.Tensor:
        for token in generated[self.n_seen :]:
            self._absorb(token)
        self.n_seen = len(generated)
        if self.stack is None:
            return logits
        top = torch.topk(logits, self.TOP_K).indices.tolist()
        valid = [t for t in top if self._ok(t)]
        if not valid:
            valid = self._scan(torch.argsort(logits, descending=True).tolist())
        masked = torch.full_like(logits, float("-inf"))
        masked[valid] = logits[valid]
        return masked

    def _absorb(self, token: int) -> None:
        text = self.stream.step(self.tokenizer.backend, token) or ""
        if self.stack is not None:
            self.stack = advance(self.stack, self.pieces[token])
            if not self.stack:  # () closed, or None (a token that was never offered): back to free text
                self.stack = None
            return
        self.tail = (self.tail + text)[-64:]
        at = self.tail.find(HERMES_OPEN)
        if at >= 0:
            rest = self.tail[at + len(HERMES_OPEN) :]
            self.stack, self.tail = advance(tool_call_stack(self.tools), rest), ""

    def _ok(self, token: int) -> bool:
        piece = self.pieces[token]
        return bool(piece) and "\ufffd" not in piece and advance(self.stack, piece) is not None

    def _scan(self, order: list[int]) -> list[int]:
        # rare: none of the likely tokens fits; walk the whole vocabulary best-first
        found = []
        for token in order:
            if self._ok(token):
                found.append(token)
                if len(found) >= 4:
                    break
        return found
