"""The engine for DeepSeek-V4 checkpoints: the `Engine` Protocol of `runtime/engine/protocol.py` (prefill with prefix reuse,
decode, score, streaming generate), over the V4 cache.

The V4 cache holds compressor states that cannot be rolled back. A prompt that extends the cached tokens
continues the cache. Otherwise the engine goes back to a snapshot taken at the end of the previous prompt,
when the new prompt starts with it. That is the multi-turn case: the reply the model generated is rendered
back into the history differently from how it was sampled (reasoning dropped, tool calls re-encoded). Only
when neither applies does the cache start again.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import torch

from ..errors import RuntimeModelError
from ..engine.generation import PREFILL_CHUNK, EngineStats, GenerationLoop
from ..engine.kv_cache import common_prefix
from ..engine.loader import LoadedModel
from .cache import V4Cache
from .encoding import V4ChatFormat

DEFAULT_V4_CONTEXT = 65536
V4_PRECISIONS = ("fp32", "bf16", "int8", "int4")
# decode is bandwidth bound: int8 projections read a quarter of fp32's bytes and keep greedy choices
# (the LM head's best candidates are recomputed in fp32); int4 is faster still but visibly less exact
V4_FAST = "int8"


class V4Tokens:
    """What the generation loop needs from `self.kv`: the token ids the cache holds."""

    def __init__(self) -> None:
        self.tokens: list[int] = []

    def common_prefix(self, ids: list[int]) -> int:
        return common_prefix(self.tokens, ids)


class V4Engine(GenerationLoop):
    def __init__(self, loaded: LoadedModel, *, context_window: int | None = None, threads: int | None = None) -> None:
        torch.set_num_threads(threads or os.cpu_count() or 1)
        self.loaded = loaded
        self.model, self.tokenizer, self.config = loaded.model, loaded.tokenizer, loaded.config
        self.context_window = min(context_window or DEFAULT_V4_CONTEXT, self.config.max_position)
        self.kv = V4Tokens()
        self.cache = self.model.new_cache()
        self.last_logits: torch.Tensor | None = None
        # (tokens, cache, logits) at the end of the last prompt prefilled
        self.prompt_snapshot: tuple[list[int], V4Cache, torch.Tensor] | None = None
        self.stats = EngineStats()
        self.lock = threading.Lock()

    @classmethod
    def load(cls, path, *, precision: str = "fp32", context_window: int | None = None, threads: int | None = None,
             numerics: str | None = None) -> V4Engine:
        from .checkpoint import load_v4
        from .tokenizer import load_v4_tokenizer

        weights = V4_FAST if precision == "auto" else precision
        if weights not in V4_PRECISIONS:  # both checked before any weight is read
            raise RuntimeModelError(f"precision {precision!r} is not available for DeepSeek-V4 (one of auto, {', '.join(V4_PRECISIONS)})")
        if weights != "fp32" and numerics == "official":
            raise RuntimeModelError(f"official numerics runs on the checkpoint's own weights: use --precision fp32, not {precision}")
        start = time.perf_counter()
        tokenizer = load_v4_tokenizer(path)
        model = load_v4(path, numerics=numerics)
        model.eval()
        if weights != "fp32" and model.config.numerics != "exact":  # set by the checkpoint's own config
            raise RuntimeModelError(f"this checkpoint's config asks for {model.config.numerics} numerics, which runs "
                                    f"on its own weights: use --precision fp32, not {precision}")
        model.pack_weights(weights)
        loaded = LoadedModel(model=model, tokenizer=tokenizer, config=model.config, path=Path(path),
                             precision=f"{weights} weights, {model.config.numerics} numerics", load_seconds=time.perf_counter() - start,
                             checkpoint_info={"format": "safetensors", "dialect": "deepseek_v4"})
        return cls(loaded, context_window=context_window, threads=threads)

    @property
    def model_id(self) -> str:
        return self.loaded.path.name

    def chat_format(self, *, thinking: bool = False) -> V4ChatFormat:
        return V4ChatFormat(self.tokenizer, thinking_mode="thinking" if thinking else "chat")

    def reset(self) -> None:
        self.cache = self.model.new_cache()
        self.kv.tokens.clear()
        self.last_logits = None

    @torch.inference_mode()
    def prefill(self, ids: list[int], *, cancel: threading.Event | None = None, all_logits: bool = False):
        self.check_fits(len(ids))
        n = self.kv.common_prefix(ids)
        if all_logits or n < len(self.kv.tokens) or (n == len(ids) and self.last_logits is None):
            if all_logits:
                self.reset()
                n = 0
            else:
                n = self.restore_prompt_snapshot(ids)
        self.stats.reused_tokens += n
        self.stats.prefill_calls += 1
        if n == len(ids):
            return self.last_logits
        outputs = []
        for s in range(n, len(ids), PREFILL_CHUNK):
            if cancel is not None and cancel.is_set():
                self.reset()
                return None
            chunk = torch.tensor(ids[s:s + PREFILL_CHUNK])
            if all_logits:
                outputs.append(self.model(chunk, self.cache))
            else:
                self.last_logits = self.model.last_logits(chunk, self.cache)
            self.kv.tokens.extend(ids[s:s + PREFILL_CHUNK])
            self.stats.prefilled_tokens += chunk.shape[0]
        if all_logits:
            out = torch.cat(outputs)
            self.last_logits = out[-1]
            return out
        self.prompt_snapshot = (list(ids), self.cache.snapshot(), self.last_logits)
        return self.last_logits

    def restore_prompt_snapshot(self, ids: list[int]) -> int:
        """Continue from the last prompt's snapshot when `ids` starts with that prompt; else start afresh.
        Returns the number of tokens the cache now holds."""
        snap = self.prompt_snapshot
        if snap is None or len(snap[0]) > len(ids) or ids[: len(snap[0])] != snap[0]:
            self.reset()
            return 0
        tokens, cache, logits = snap
        self.cache = cache.snapshot()  # the snapshot itself stays reusable
        self.kv.tokens[:] = tokens
        self.last_logits = logits
        return len(tokens)

    @torch.inference_mode()
    def decode(self, token: int) -> torch.Tensor:
        self.last_logits = self.model.last_logits(torch.tensor([token]), self.cache)
        self.kv.tokens.append(token)
        self.stats.decoded_tokens += 1
        return self.last_logits

    def score(self, ids: list[int]) -> torch.Tensor:
        self.reset()
        return self.prefill(ids, all_logits=True)
