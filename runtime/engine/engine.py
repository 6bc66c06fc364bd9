"""The single-sequence engine: chunked prefill with prefix reuse, cached decode, sampling, stop handling, streaming.

One engine serves one conversation at a time (the agent's use); its KV cache keeps the token ids it
holds, and a new prompt that extends them prefills only the new tokens.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers.decoders import DecodeStream

from ..errors import ContextOverflow, RuntimeModelError
from ..layers.attention import AttnContext
from .kv_cache import KVCache
from .loader import FAST, LoadedModel, load_model
from .sampling import Sampler, SamplingParams

DEFAULT_CONTEXT_CAP = 8192  # the KV block is preallocated, so a 128k-context model is not given 128k by default
PREFILL_CHUNK = 512

# (logits (V,), ids generated so far) -> logits to sample from; lets a grammar mask tokens
LogitsProcessor = Callable[[torch.Tensor, list[int]], torch.Tensor]


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


class Engine:
    def __init__(self, loaded: LoadedModel, *, context_window: int | None = None, threads: int | None = None) -> None:
        torch.set_num_threads(threads or os.cpu_count() or 1)
        self.loaded = loaded
        self.model, self.tokenizer, self.config = loaded.model, loaded.tokenizer, loaded.config
        self.context_window = min(context_window or min(self.config.max_position, DEFAULT_CONTEXT_CAP), self.config.max_position)
        self.kv = KVCache(self.model.attention_layers(), self.context_window, self.model.act_dtype)
        self.stats = EngineStats()
        self.lock = threading.Lock()  # one generation at a time: the KV cache is shared state

    @classmethod
    def load(cls, path: str | Path, *, precision: str = FAST, context_window: int | None = None, threads: int | None = None) -> Engine:
        return cls(load_model(path, precision=precision), context_window=context_window, threads=threads)

    @property
    def model_id(self) -> str:
        return self.loaded.path.name

    # --- forward passes -------------------------------------------------------------------------

    def check_fits(self, n_prompt: int) -> None:
        if n_prompt == 0:
            raise RuntimeModelError("empty prompt: there is nothing to continue")
        if n_prompt >= self.context_window:
            raise ContextOverflow(
                f"prompt of {n_prompt} tokens does not fit the context window of {self.context_window} tokens "
                f"(model maximum {self.config.max_position}); shorten the conversation or load with a larger context_window"
            )

    @torch.inference_mode()
    def prefill(self, ids: list[int], *, cancel: threading.Event | None = None, all_logits: bool = False) -> torch.Tensor | None:
        """Make the cache hold `ids`; returns logits of the last token (V,), or of every new token (T, V) with all_logits.

        Only the part of `ids` after the longest prefix already cached is computed.
        """
        self.check_fits(len(ids))
        start = 0 if all_logits else min(self.kv.common_prefix(ids), len(ids) - 1)
        self.stats.reused_tokens += start
        self.stats.prefill_calls += 1
        del self.kv.tokens[start:]
        outputs = []
        for chunk_start in range(start, len(ids), PREFILL_CHUNK):
            if cancel is not None and cancel.is_set():
                return None
            chunk = ids[chunk_start : chunk_start + PREFILL_CHUNK]
            hidden = self.model(torch.tensor(chunk), AttnContext.make(chunk_start, len(chunk)))  # (T, hidden)
            self.kv.tokens.extend(chunk)
            self.stats.prefilled_tokens += len(chunk)
            outputs.append(self.model.compute_logits(hidden) if all_logits else hidden[-1:])
        if all_logits:
            return torch.cat(outputs)  # (T, V)
        return self.model.compute_logits(outputs[-1])[0]  # (V,)

    @torch.inference_mode()
    def decode(self, token: int) -> torch.Tensor:
        """Append one token to the cache and return the next-token logits (V,)."""
        pos = len(self.kv.tokens)
        hidden = self.model(torch.tensor([token]), AttnContext(pos, 1))  # (1, hidden)
        self.kv.tokens.append(token)
        self.stats.decoded_tokens += 1
        return self.model.compute_logits(hidden)[0]

    def score(self, ids: list[int]) -> torch.Tensor:
        """Logits at every position of `ids` (T, V), computed from an empty cache."""
        self.kv.tokens.clear()
        return self.prefill(ids, all_logits=True)

    # --- generation -----------------------------------------------------------------------------

    def generate(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        logits_processor: LogitsProcessor | None = None,
    ) -> Iterator[StepOutput]:
        """Stream tokens for `prompt_ids`. Raises ContextOverflow before any work if the prompt does not fit."""
        self.check_fits(len(prompt_ids))
        with self.lock:
            yield from self._generate(prompt_ids, params, cancel, logits_processor)

    def _generate(
        self, prompt_ids: list[int], params: SamplingParams, cancel: threading.Event | None, processor: LogitsProcessor | None
    ) -> Iterator[StepOutput]:
        logits = self.prefill(prompt_ids, cancel=cancel)
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
