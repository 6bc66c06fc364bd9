"""The one interface every model backend implements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from ..events import Event
from ..messages import Message


class GenerationParams(BaseModel):
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    # A `time.monotonic()` instant: a backend stops waiting for the server then and ends with an Error of kind
    # "timeout", whatever the server does (keep-alive comments, a slow first byte, a long Retry-After).
    deadline: float | None = None


@runtime_checkable
class Backend(Protocol):
    """`stream` yields Events and ends with exactly one `Done` or `Error`; it never raises for model or network trouble.

    The contract (docs/architecture.md, "Backends"): every member is required, so callers never ask
    `hasattr`; a backend with nothing to do for `cancel` or `drop_cache` implements them as no-ops."""

    # True when `count_tokens` uses the model's own tokenizer; False for an estimate (the repository block
    # then budgets with the loader's deliberately high estimate instead).
    exact_token_count: bool

    @property
    def model_id(self) -> str: ...

    @property
    def context_window(self) -> int: ...

    def count_tokens(self, messages: Sequence[Message]) -> int: ...

    def stream(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], params: GenerationParams
    ) -> Iterator[Event]: ...

    def cancel(self) -> None:
        """Stop the request in flight (called from another thread); its stream then ends soon."""

    def drop_cache(self) -> None:
        """Erase every cached prompt state (after a forget, no trace of the text may stay in memory)."""


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A tokenizer-free estimate (about 4 characters a token) for backends that cannot count exactly."""
    chars = 0
    for message in messages:
        chars += len(message.content or "") + 16
        for call in message.tool_calls:
            chars += len(call.name) + len(call.arguments)
    return chars // 4 + 1
