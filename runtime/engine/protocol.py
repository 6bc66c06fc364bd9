"""The `Engine` Protocol: what the agent's in-process backend and the `models` commands need from an engine.

`LlamaEngine` (runtime/engine/engine.py) and `V4Engine` (runtime/deepseek_v4/engine.py) implement it;
`open_engine` (runtime/engine/open.py) picks one by checkpoint kind. See docs/architecture.md, "runtime".
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import torch

from ..kv.identity import ModelIdentity
from ..kv.prefix_cache import PrefixCache, Provenance, RestoreReport
from ..kv.snapshot import KVSnapshot
from ..tokenizer import Tokenizer
from ..tool_calls import ParsedToolCall, TextPiece
from .generation import EngineStats, LogitsProcessor, PrefillProgress, StepOutput
from .loader import LoadedModel
from .sampling import SamplingParams


class ToolCallParser(Protocol):
    """Splits streamed model text into plain text and complete tool calls."""

    def feed(self, text: str) -> list[TextPiece | ParsedToolCall]: ...

    def finish(self) -> list[TextPiece | ParsedToolCall]: ...


class PromptFormat(Protocol):
    """The model's own chat encoding: OpenAI-shaped messages in, prompt text/ids out, and its tool-call syntax."""

    def render(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None) -> str: ...

    def prompt_ids(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None) -> list[int]: ...

    def tool_parser(self) -> ToolCallParser: ...

    def tool_constraint(self, tokenizer: Tokenizer, tools: Sequence[Mapping[str, Any]]) -> LogitsProcessor | None:
        """A logits processor that keeps the model's tool calls valid for `tools` in this format's syntax, or None
        when the format has no grammar. Raises RuntimeModelError when the schemas do not compile."""


class Engine(Protocol):
    loaded: LoadedModel
    tokenizer: Tokenizer
    context_window: int
    stats: EngineStats
    lock: threading.Lock  # one generation at a time: the cache is shared state

    @property
    def model_id(self) -> str: ...

    def chat_format(self, *, thinking: bool = False) -> PromptFormat:
        """`thinking`: the model's thinking mode where it has one."""

    def check_fits(self, n_prompt: int) -> None:
        """Raise ContextOverflow (or RuntimeModelError for an empty prompt) before any work."""

    def prefill(self, ids: list[int], *, cancel: threading.Event | None = None,
                all_logits: bool = False, restore_points: Sequence[int] = (),
                on_progress: PrefillProgress | None = None) -> torch.Tensor | None:
        """Make the cache hold `ids`, reusing what it can (its own cache, then the attached prefix cache);
        next-token logits (V,), every position's with all_logits (T, V), None when cancelled.
        `restore_points`: positions to be able to resume from later (V4 splits its prefill there).
        `on_progress(done, total)`: before the first chunk and after each, the tokens computed of those this call
        computes."""

    def decode(self, token: int) -> torch.Tensor:
        """Append one token; next-token logits (V,)."""

    def score(self, ids: list[int]) -> torch.Tensor:
        """Logits at every position of `ids` (T, V), from an empty cache."""

    def generate(self, prompt_ids: list[int], params: SamplingParams, *, cancel: threading.Event | None = None,
                 logits_processor: LogitsProcessor | None = None,
                 restore_points: Sequence[int] = (), on_progress: PrefillProgress | None = None) -> Iterator[StepOutput]: ...

    def reset(self) -> None:
        """Erase every cached K/V and snapshot, not only mark them stale (after a forget nothing may stay)."""

    # --- Engram KV (runtime/kv/): export/import of a prefix and the prefix-cache hook ---------------

    kv_report: RestoreReport  # what the last prefill restored from the prefix cache
    restore_whole_only: bool  # True where the cache cannot be cut (V4): snapshots restore whole, at restore points

    def export_prefix(self, n_tokens: int) -> KVSnapshot:
        """The cache's first `n_tokens` as a snapshot of contiguous clones (V4: only at a restore point or the
        current length; ValueError otherwise)."""

    def import_prefix(self, snapshot: KVSnapshot, *, limit: int | None = None) -> int:
        """Make the cache hold the snapshot's prefix (at most `limit` tokens where the cache can be cut);
        returns the tokens held. Raises SnapshotRefused, with the reason, before changing anything."""

    def model_identity(self) -> ModelIdentity:
        """Everything that changes the KV a prompt produces (its digest keys the snapshots)."""

    def attach_prefix_cache(self, cache: PrefixCache | None) -> None:
        """Consult `cache` in prefill (under the lock) when the engine's own cache lacks a prompt's prefix."""

    def holds_prefix(self, ids: list[int]) -> bool:
        """Whether `export_prefix(len(ids))` would export exactly these ids (call under the lock)."""

    def save_prefix(self, n_tokens: int, provenance: Provenance | None = None, *,
                    tokens: list[int] | None = None) -> str | None:
        """Snapshot the first `n_tokens` into the attached prefix cache (thread-safe); its id, or None (no cache,
        or the cache no longer holds `tokens`)."""
