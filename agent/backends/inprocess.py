"""The in-process backend: the runtime engine behind the Backend protocol.

Importing this module is cheap (no torch): the runtime is imported inside `load()`, so the CLI starts
fast and machines without the runtime extra can still run every other backend.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsv4.runtime.errors import ModelNotFound, RuntimeModelError

from ..events import Done, Error, Event, KVRestore, TextDelta, Usage
from ..messages import Message, ToolCall
from ..progress import Progress, ProgressCallback
from .base import GenerationParams

if TYPE_CHECKING:
    from dsv4.runtime.engine.protocol import Engine, PromptFormat
    from dsv4.runtime.kv.prefix_cache import PrefixCache

__all__ = ["InProcessBackend", "ModelNotFound"]

# Small local models loop easily when greedy; these are SmolLM2's recommended settings.
DEFAULT_TEMPERATURE, DEFAULT_TOP_P = 0.2, 0.9
DEFAULT_MAX_TOKENS = 1024


@dataclass(frozen=True)
class PromptPrefix:
    """The last request's prompt ids and where its system message and tools end: the prefixes worth snapshotting."""

    ids: list[int]
    system_end: int  # 0 when the prompt has no system message


class InProcessBackend:
    exact_token_count = True  # counts with the model's own tokenizer (the repository block budgets by it)

    def __init__(self, engine: Engine, *, name: str, constrain_tool_calls: bool = True) -> None:
        self.engine = engine
        self.name = name
        self.chat: PromptFormat = engine.chat_format()  # the model's own encoding and tool-call syntax
        self.constrain_tool_calls = constrain_tool_calls
        self.cancel_event = threading.Event()
        self._on_prefill: Callable[[int, int], None] | None = None  # progress within a prefill (the TUI's bar)
        self.on_prefill: Callable[[KVRestore], None] | None = None  # told after each request's prefill (KV report)
        self.last_prompt: PromptPrefix | None = None

    def report_prefill(self, callback: Callable[[int, int], None] | None) -> None:
        """`callback(done, total)` after each prefill chunk of a request (agent/progress.py: ReportsPrefill)."""
        self._on_prefill = callback

    def attach_snapshot_store(self, store: PrefixCache | None) -> None:
        """Restore prompt prefixes from (and save them to) an Engram KV store (agent/kv_wiring.py)."""
        self.engine.attach_prefix_cache(store)

    def system_end(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], prompt: list[int]) -> int:
        """Where the system message and the tools end in `prompt`: the prefix a compaction and the next session
        share, a restore point for V4 (whose cache cannot be cut later)."""
        from dsv4.runtime.engine.kv_cache import common_prefix  # torch is loaded: the engine holds it

        if not messages or messages[0].role != "system":
            return 0
        alone = self.chat.prompt_ids([messages[0].to_openai()], list(tools))
        return common_prefix(alone, prompt)

    def drop_cache(self) -> None:
        """Erase every cached K/V (not only mark it stale): after a forget, no trace may stay in memory."""
        with self.engine.lock:
            self.engine.reset()

    @classmethod
    def load(
        cls,
        model: str = "smollm2-135m",
        *,
        context_window: int | None = None,
        device: str | None = None,
        precision: str | None = None,
        constrain_tool_calls: bool = True,
        hot_kv_bytes: int | None = None,
        threads: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> InProcessBackend:
        """`model`: a GGUF file, an HF checkpoint folder, or a named model. Raises ModelNotFound (with the options) or
        another RuntimeModelError (bad file, missing tokenizer) before loading any weights. `on_progress` hears
        the load (stage "model"): checkpoint tensors read, or a DeepSeek-V4 load's steps."""
        from dsv4.runtime.engine.open import checkpoint_kind, open_engine
        from dsv4.runtime.resolve import resolve_model

        resolved = resolve_model(model)
        loading = None
        if on_progress is not None:
            unit = "tensors" if checkpoint_kind(resolved.path) == "llama" else "steps"

            def loading(done: int, total: int) -> None:
                on_progress(Progress(stage="model", done=done, total=total, unit=unit))

        # device: cpu (None), cuda (a clear RuntimeModelError without one) or auto (CUDA when available)
        engine = open_engine(resolved.path, precision=precision, context_window=context_window, device=device,
                             threads=threads, hot_kv_bytes=hot_kv_bytes, on_progress=loading)
        return cls(engine, name=resolved.name, constrain_tool_calls=constrain_tool_calls)

    @property
    def model_id(self) -> str:
        return self.name

    @property
    def context_window(self) -> int:
        return self.engine.context_window

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.chat.prompt_ids([m.to_openai() for m in messages]))

    def cancel(self) -> None:
        """Stop the generation in flight (from another thread); its stream ends with Done(finish_reason="cancelled")."""
        self.cancel_event.set()

    def stream(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], params: GenerationParams) -> Iterator[Event]:
        try:
            yield from self._stream(messages, tools, params)
        except RuntimeModelError as exc:
            yield Error(message=str(exc), kind="runtime")
        except Exception as exc:  # the protocol: model trouble is an Error event, never an exception
            yield Error(message=f"in-process runtime failed: {type(exc).__name__}: {exc}", kind="runtime")

    def _stream(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]], params: GenerationParams) -> Iterator[Event]:
        from dsv4.runtime.engine.sampling import SamplingParams
        from dsv4.runtime.tool_calls import ParsedToolCall

        engine = self.engine
        started = time.perf_counter()
        prompt = self.chat.prompt_ids([m.to_openai() for m in messages], list(tools))
        engine.check_fits(len(prompt))
        system_end = self.system_end(messages, tools, prompt)
        sampling = SamplingParams(
            max_tokens=params.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=DEFAULT_TEMPERATURE if params.temperature is None else params.temperature,
            top_p=DEFAULT_TOP_P if params.top_p is None else params.top_p,
            seed=params.seed,
            stop=list(params.stop or []),
        )
        constrain = tools and self.constrain_tool_calls
        processor = self.chat.tool_constraint(engine.tokenizer, tools) if constrain else None
        parser, n_calls, completion = self.chat.tool_parser(), 0, 0
        reused_before, report_before = engine.stats.reused_tokens, engine.kv_report
        self.cancel_event.clear()
        finish, first = "stop", True
        points = [system_end] if 0 < system_end < len(prompt) else []
        setup_s = time.perf_counter() - started  # tokenising, the tool-call grammar: not prefill
        for out in engine.generate(prompt, sampling, cancel=self.cancel_event, logits_processor=processor,
                                   restore_points=points, on_progress=self._on_prefill):
            if first:
                first = False
                self._prefilled(prompt, time.perf_counter() - started, setup_s,
                                engine.stats.reused_tokens - reused_before, report_before)
            completion += out.token_id is not None
            pieces = parser.feed(out.text) if out.text else []
            if out.finish_reason is not None:
                pieces += parser.finish()
                finish = out.finish_reason
            for piece in pieces:
                if isinstance(piece, ParsedToolCall):
                    n_calls += 1
                    yield ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", name=piece.name, arguments=piece.arguments)
                elif piece.text:
                    yield TextDelta(text=piece.text)
        if finish != "cancelled":
            self.last_prompt = PromptPrefix(ids=prompt, system_end=system_end)
        yield Usage(prompt_tokens=len(prompt), completion_tokens=completion, cached_prompt_tokens=engine.stats.reused_tokens - reused_before)
        yield Done(finish_reason="tool_calls" if n_calls and finish == "stop" else finish)

    def _prefilled(self, prompt: list[int], first_token_s: float, setup_s: float, reused: int,
                   report_before: Any) -> None:
        if self.on_prefill is None:
            return
        report = self.engine.kv_report
        consulted = report is not report_before  # each prefill that consults the store makes a new report
        restore_s = report.restore_s if consulted else 0.0
        self.on_prefill(KVRestore(
            prompt_tokens=len(prompt), restored_tokens=report.restored_tokens if consulted else 0,
            tier=report.tier if consulted else "", reused_tokens=reused, prefill_tokens=len(prompt) - reused,
            restore_s=restore_s, prefill_s=max(first_token_s - setup_s - restore_s, 0.0), first_token_s=first_token_s,
            refused=list(report.refused) if consulted else [], consulted=consulted))
