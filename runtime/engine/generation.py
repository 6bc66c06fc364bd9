"""What every engine shares around its own prefill and decode: the prompt-fits check and the streaming
generation loop (sampling, stop strings, cancellation, the context cap)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from tokenizers.decoders import DecodeStream

from ..errors import ContextOverflow, RuntimeModelError
from ..tokenizer import Tokenizer
from .sampling import Sampler, SamplingParams

PREFILL_CHUNK = 512  # prompt tokens per forward pass: bounds activation memory, keeps cancellation prompt

# (logits (V,), ids generated so far) -> logits to sample from; lets a grammar mask tokens
LogitsProcessor = Callable[[torch.Tensor, list[int]], torch.Tensor]
# (tokens computed so far, tokens this prefill computes), at 0 and after each chunk; reused cache tokens are not counted
PrefillProgress = Callable[[int, int], None]


@dataclass(slots=True)
class EngineStats:
    prefilled_tokens: int = 0  # tokens run through prefill (what prefix reuse saves)
    reused_tokens: int = 0  # prompt tokens whose KV was already cached
    decoded_tokens: int = 0
    prefill_calls: int = 0


@dataclass(slots=True)
class StepOutput:
    token_id: int | None
    text: str  # new text since the last step (may be "" while a multi-byte character is incomplete)
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" on the last output


class CachedTokens(Protocol):
    tokens: list[int]  # the ids the engine's cache holds, in order


class GenerationLoop:
    """Mixed into an engine that defines `prefill(ids, cancel=)` and `decode(token)` (both returning logits) and
    has the attributes below."""

    tokenizer: Tokenizer
    config: Any  # has max_position
    context_window: int
    lock: threading.Lock
    kv: CachedTokens
    prefill: Callable[..., torch.Tensor | None]
    decode: Callable[[int], torch.Tensor]

    def check_fits(self, n_prompt: int) -> None:
        if n_prompt == 0:
            raise RuntimeModelError("empty prompt: there is nothing to continue")
        if n_prompt >= self.context_window:
            raise ContextOverflow(
                f"prompt of {n_prompt} tokens does not fit the context window of {self.context_window} tokens "
                f"(model maximum {self.config.max_position}); shorten the conversation or load with a larger context_window"
            )

    # --- generation -----------------------------------------------------------------------------

    def generate(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        logits_processor: LogitsProcessor | None = None,
        restore_points: Sequence[int] = (),
        on_progress: PrefillProgress | None = None,
    ) -> Iterator[StepOutput]:
        """Stream tokens for `prompt_ids`. Raises ContextOverflow before any work if the prompt does not fit.
        `restore_points`: prompt positions the engine should be able to resume from later (end of system + tools,
        end of each turn); engines whose cache cannot be cut (V4) split their prefill there. `on_progress`: the
        prefill's progress, after each chunk."""
        self.check_fits(len(prompt_ids))
        with self.lock:
            yield from self._generate(prompt_ids, params, cancel, logits_processor, restore_points, on_progress)

    def _generate(
        self, prompt_ids: list[int], params: SamplingParams, cancel: threading.Event | None, processor: LogitsProcessor | None,
        restore_points: Sequence[int] = (), on_progress: PrefillProgress | None = None,
    ) -> Iterator[StepOutput]:
        logits = self.prefill(prompt_ids, cancel=cancel, restore_points=restore_points, on_progress=on_progress)
        if logits is None:
            yield StepOutput(None, "", "cancelled")
            return
        sampler, stops = Sampler(params), StopMatcher(params.stop)
        stream, generated = DecodeStream(skip_special_tokens=False), []
        stop_ids = frozenset() if params.ignore_eos else self.tokenizer.stop_token_ids
        backend = self.tokenizer.backend
        for _ in range(params.max_tokens):
            if cancel is not None and cancel.is_set():
                yield StepOutput(None, stops.flush(), "cancelled")
                return
            if processor is not None:
                logits = processor(logits, generated)
            token = sampler(logits)
            if token in stop_ids:
                yield StepOutput(token, stops.flush(), "stop")
                return
            generated.append(token)
            text, hit = stops.feed(stream.step(backend, token) or "")
            if hit:
                yield StepOutput(token, text, "stop")
                return
            if len(self.kv.tokens) + 1 >= self.context_window:
                yield StepOutput(token, text + stops.flush(), "length")
                return
            yield StepOutput(token, text)
            logits = self.decode(token)
        yield StepOutput(None, stops.flush(), "length")


class StopMatcher:
    """Holds back text that could be the start of a stop string, so a stop string is never streamed."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        if not self.stops:
            return piece, False
        buf = self.held + piece
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.held = ""
            return buf[: min(hits)], True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buf)), 0, -1):
                if buf.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        text, self.held = self.held, ""
        return text
