"""The single-sequence engine: chunked prefill with prefix reuse, cached decode, sampling, stop handling, streaming.

One engine serves one conversation at a time (the agent's use); its KV cache keeps the token ids it
holds, and a new prompt that extends them prefills only the new tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import torch

from ..chat import ChatFormat
from ..kv.engine_hooks import PrefixCacheHooks
from ..kv.identity import ModelIdentity
from ..kv.snapshot import KVSnapshot
from ..layers.attention import AttnContext
from .device import cpu_threads
from .kv_cache import KVCache
from .kv_export import export_llama, import_llama, llama_identity
from .generation import PREFILL_CHUNK, EngineStats, GenerationLoop, PrefillProgress
from .loader import FAST, LoadedModel, LoadProgress, load_model

DEFAULT_CONTEXT_CAP = 8192  # the KV block grows up to the window; the cap bounds what one sequence may take


class LlamaEngine(GenerationLoop, PrefixCacheHooks):
    """Llama-family models (SmolLM2, Llama, Qwen2-style) with one K/V block for all layers, grown on demand."""

    def __init__(self, loaded: LoadedModel, *, context_window: int | None = None, threads: int | None = None,
                 device: torch.device | None = None, hot_kv_bytes: int | None = None) -> None:
        """`hot_kv_bytes`: the live warm tier's budget (runtime/engine/kv_tiers.py); None keeps every position hot."""
        torch.set_num_threads(cpu_threads(threads))
        self.device = device or torch.device("cpu")
        self.loaded = loaded
        self.model, self.tokenizer, self.config = loaded.model, loaded.tokenizer, loaded.config
        self.context_window = min(context_window or min(self.config.max_position, DEFAULT_CONTEXT_CAP), self.config.max_position)
        self.kv = KVCache(self.model.attention_layers(), self.context_window, self.model.act_dtype, self.device,
                          hot_bytes=hot_kv_bytes)
        self.stats = EngineStats()
        self.lock = threading.Lock()  # one generation at a time: the KV cache is shared state

    @classmethod
    def load(cls, path: str | Path, *, precision: str = FAST, context_window: int | None = None, threads: int | None = None,
             device: torch.device | None = None, hot_kv_bytes: int | None = None,
             on_progress: LoadProgress | None = None) -> LlamaEngine:
        loaded = load_model(path, precision=precision, on_progress=on_progress)
        cls.place(loaded, device)
        return cls(loaded, context_window=context_window, threads=threads, device=device, hot_kv_bytes=hot_kv_bytes)

    @staticmethod
    def place(loaded: LoadedModel, device: torch.device | None) -> None:
        """Move the weights to `device` (loaded on the CPU; a no-op there)."""
        if device is not None and device.type != "cpu":
            loaded.model.to(device)
            loaded.precision += f" on {device}"

    @property
    def model_id(self) -> str:
        return self.loaded.path.name

    def chat_format(self, *, thinking: bool = False) -> ChatFormat:
        """`thinking` has no effect: llama-family templates have no thinking mode."""
        return ChatFormat(self.tokenizer)

    def reset(self) -> None:
        """Erase every cached K/V, not only mark it stale: after a forget no trace may stay in memory."""
        self.kv.clear()

    # --- forward passes -------------------------------------------------------------------------

    @torch.inference_mode()
    def prefill(self, ids: list[int], *, cancel: threading.Event | None = None, all_logits: bool = False,
                restore_points: Sequence[int] = (), on_progress: PrefillProgress | None = None) -> torch.Tensor | None:
        """Make the cache hold `ids`; returns logits of the last token (V,), or of every new token (T, V) with all_logits.

        Only the part of `ids` after the longest prefix already cached (or restored from the attached prefix
        cache) is computed. `restore_points` need no special handling: a llama cache restores at any position.
        """
        self.check_fits(len(ids))
        start = 0 if all_logits else min(self.kv.common_prefix(ids), len(ids) - 1)
        if not all_logits and self.prefix_cache is not None and start < len(ids) - 1:
            start = self.restore_from_prefix_cache(ids[:-1], start)  # the last token runs for its logits
            self.kv_report.prefill_tokens = len(ids) - start
        self.stats.reused_tokens += start
        self.stats.prefill_calls += 1
        self.kv.truncate(start)
        self.kv.reserve(len(ids) if self.kv.warm is None else start)  # a warm tier demotes chunk by chunk
        outputs = []
        if on_progress is not None:
            on_progress(0, len(ids) - start)
        for chunk_start in range(start, len(ids), PREFILL_CHUNK):
            if cancel is not None and cancel.is_set():
                return None
            chunk = ids[chunk_start : chunk_start + PREFILL_CHUNK]
            self.kv.reserve(chunk_start + len(chunk))  # reserved above without a warm tier: a no-op then
            hidden = self.model(torch.tensor(chunk, device=self.device), AttnContext.make(chunk_start, len(chunk), self.device))  # (T, hidden)
            self.kv.tokens.extend(chunk)
            self.stats.prefilled_tokens += len(chunk)
            outputs.append(self.model.compute_logits(hidden) if all_logits else hidden[-1:])
            if on_progress is not None:
                on_progress(chunk_start + len(chunk) - start, len(ids) - start)
        if all_logits:
            return torch.cat(outputs).cpu()  # (T, V); sampling and grammars work on host tensors
        return self.model.compute_logits(outputs[-1])[0].cpu()  # (V,)

    @torch.inference_mode()
    def decode(self, token: int) -> torch.Tensor:
        """Append one token to the cache and return the next-token logits (V,)."""
        pos = len(self.kv.tokens)
        self.kv.reserve(pos + 1)
        hidden = self.model(torch.tensor([token], device=self.device), AttnContext(pos, 1))  # (1, hidden)
        self.kv.tokens.append(token)
        self.stats.decoded_tokens += 1
        return self.model.compute_logits(hidden)[0].cpu()

    # --- Engram KV: export / import of a prefix (runtime/engine/kv_export.py) ---------------------

    def identity_fields(self, digest_cache: Path | None) -> ModelIdentity:
        return llama_identity(self, digest_cache)

    def export_prefix(self, n_tokens: int) -> KVSnapshot:
        """The K/V of the first `n_tokens` cached positions, as contiguous clones."""
        return export_llama(self, n_tokens)

    def holds_prefix(self, ids: list[int]) -> bool:
        return 0 < len(ids) <= len(self.kv.tokens) and self.kv.tokens[: len(ids)] == ids

    def import_prefix(self, snapshot: KVSnapshot, *, limit: int | None = None) -> int:
        """Load a snapshot's first min(limit, length) positions; raises SnapshotRefused before any change."""
        return import_llama(self, snapshot, limit)

    def score(self, ids: list[int]) -> torch.Tensor:
        """Logits at every position of `ids` (T, V), computed from an empty cache."""
        self.kv.truncate(0)
        return self.prefill(ids, all_logits=True)
