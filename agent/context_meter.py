"""How full the context is before each request: system message, tool schemas, conversation, reserved output.

With a backend that counts with the model's own tokenizer (`exact_token_count`, in-process) the count is
exact. Otherwise the last prompt size the server reported is the base, plus an estimate of the messages
added since; when the conversation changed under it (a compaction, a forget), the whole is estimated.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .backends.base import Backend, estimate_tokens
from .messages import Message

DEFAULT_RESERVED_OUTPUT = 4096


@dataclass(frozen=True)
class Reading:
    used: int  # prompt tokens plus the output reserved for the reply
    window: int
    exact: bool

    @property
    def share(self) -> float:
        return self.used / self.window if self.window else 1.0

    @property
    def fits(self) -> bool:
        return self.used <= self.window


class ContextMeter:
    def __init__(self, backend: Backend, window: int | None = None, reserved_output: int | None = None) -> None:
        self.backend = backend
        self.window = window or backend.context_window  # `context_window` in the config overrides the backend's figure
        # The reply needs room too; without an explicit max_tokens reserve an eighth of the window, at most 4096.
        self.reserved_output = reserved_output or min(DEFAULT_RESERVED_OUTPUT, max(1, self.window // 8))
        self._tools_key = ""
        self._tools_tokens = 0
        self._reported: tuple[list[Message], int] | None = None  # the messages of the last request, its prompt tokens

    def tools_tokens(self, tools: Sequence[dict[str, Any]]) -> int:
        key = json.dumps(list(tools), sort_keys=True)
        if key != self._tools_key:
            self._tools_key = key
            if not tools:
                self._tools_tokens = 0
            elif self.backend.exact_token_count:
                bare = self.backend.count_tokens([Message(role="user", content="")])
                self._tools_tokens = max(0, self.backend.count_tokens([Message(role="user", content=key)]) - bare)
            else:
                self._tools_tokens = len(key) // 4 + 1
        return self._tools_tokens

    def prompt_tokens(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]],
                      reported: bool = True) -> tuple[int, bool]:
        if self.backend.exact_token_count:
            return self.backend.count_tokens(messages) + self.tools_tokens(tools), True
        if reported and self._reported is not None:
            sent, reported = self._reported
            if len(sent) <= len(messages) and all(a == b for a, b in zip(sent, messages)):
                return reported + estimate_tokens(messages[len(sent):]), False
        return estimate_tokens(messages) + self.tools_tokens(tools), False

    def measure(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], reported: bool = True) -> Reading:
        """`reported=False` counts without the server's last figure: two such readings of different conversations
        compare like for like (a compaction's before and after)."""
        tokens, exact = self.prompt_tokens(messages, tools, reported)
        return Reading(used=tokens + self.reserved_output, window=self.window, exact=exact)

    def observe(self, messages: Sequence[Message], prompt_tokens: int) -> None:
        """The server's count for the request just made: the base of the next estimate (0: it reported none)."""
        self._reported = (list(messages), prompt_tokens) if prompt_tokens > 0 else None
