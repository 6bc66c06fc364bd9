"""The engine for DeepSeek-V4 checkpoints: the `Engine` Protocol of `runtime/engine/protocol.py` (prefill with prefix reuse,
decode, score, streaming generate), over the V4 cache.

The V4 cache holds compressor states that cannot be rolled back. A prompt that extends the cached tokens
continues the cache. Otherwise the engine goes back to a restore point (a snapshot taken at the end of a
previous prompt, or at a position the caller named) that the new prompt starts with. That is the multi-turn case: the reply the model generated is rendered
back into the history differently from how it was sampled (reasoning dropped, tool calls re-encoded). Only
when neither applies does the cache start again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import RuntimeModelError
from ..engine.generation import PREFILL_CHUNK, EngineStats, GenerationLoop, PrefillProgress
from ..engine.kv_cache import common_prefix
from ..engine.loader import LoadedModel, LoadProgress
from ..kv.engine_hooks import PrefixCacheHooks
from ..kv.identity import ModelIdentity
from ..kv.snapshot import KVSnapshot, SnapshotRefused
from .cache import V4Cache
from .encoding import V4ChatFormat
from .kv_export import export_v4, import_v4, v4_identity
from .kv_tiers import demote_oldest
from .quantised import kept_bytes, pack_around_kept
from ..engine.device import cpu_threads, quantised_weight_formats

DEFAULT_V4_CONTEXT = 65536
V4_PRECISIONS = ("fp32", "bf16", "int8", "int4")
# decode is bandwidth bound: int8 projections read a quarter of fp32's bytes and keep greedy choices
# (the LM head's best candidates are recomputed in fp32); int4 is faster still but visibly less exact
V4_FAST = "int8"
MAX_RESTORE_POINTS = 8  # caches kept in RAM to go back to; they share append-only rows


class V4Tokens:
    """What the generation loop needs from `self.kv`: the token ids the cache holds."""

    def __init__(self) -> None:
        self.tokens: list[int] = []

    def common_prefix(self, ids: list[int]) -> int:
        return common_prefix(self.tokens, ids)


@dataclass(slots=True)
class RestorePoint:
    tokens: list[int]
    cache: V4Cache  # a snapshot: shares append-only rows with the live cache
    logits: torch.Tensor  # of the last token (the cache cannot re-run it)


class V4Engine(GenerationLoop, PrefixCacheHooks):
    restore_whole_only = True  # a V4 cache cannot be cut: snapshots restore whole

    def __init__(self, loaded: LoadedModel, *, context_window: int | None = None, threads: int | None = None,
                 device: torch.device | None = None, hot_kv_bytes: int | None = None) -> None:
        """`hot_kv_bytes`: the budget of CSA compressed rows kept hot; past it the oldest go to the int8 warm
        tier (runtime/deepseek_v4/kv_tiers.py). None keeps everything hot (bit for bit the plain cache)."""
        torch.set_num_threads(cpu_threads(threads))
        self.device = device or torch.device("cpu")
        self.loaded = loaded
        self.model, self.tokenizer, self.config = loaded.model, loaded.tokenizer, loaded.config
        self.context_window = min(context_window or DEFAULT_V4_CONTEXT, self.config.max_position)
        self.kv = V4Tokens()
        self.cache = self.model.new_cache()
        self.last_logits: torch.Tensor | None = None
        # token count -> the cache there (ends of prompts, caller-given restore points, imports), oldest first
        self.restore_points: dict[int, RestorePoint] = {}
        self.stats = EngineStats()
        self.lock = threading.Lock()
        csa = sum(1 for r in self.config.compress_ratios if r == 4)
        self.hot_rows = None if hot_kv_bytes is None or not csa else hot_kv_bytes // (csa * self.config.head_dim * 4)

    @classmethod
    def load(cls, path, *, precision: str = "fp32", context_window: int | None = None, threads: int | None = None,
             numerics: str | None = None, device: torch.device | None = None,
             hot_kv_bytes: int | None = None, on_progress: LoadProgress | None = None) -> V4Engine:
        """on_progress(done, total): the load's steps (tokenizer, weights read, weights placed and packed)."""
        from .checkpoint import load_v4
        from .tokenizer import load_v4_tokenizer

        weights = V4_FAST if precision == "auto" else precision
        if weights not in V4_PRECISIONS:  # both checked before any weight is read
            raise RuntimeModelError(f"precision {precision!r} is not available for DeepSeek-V4 (one of auto, {', '.join(V4_PRECISIONS)})")
        if weights != "fp32" and numerics == "official":
            raise RuntimeModelError(f"official numerics runs on the checkpoint's own weights: use --precision fp32, not {precision}")
        start = time.perf_counter()
        report = on_progress or (lambda done, total: None)
        report(0, 3)
        tokenizer = load_v4_tokenizer(path)
        report(1, 3)
        keep = quantised_weight_formats(device, weights)  # CUDA: the checkpoint's FP8/FP4 weights stay quantised
        model = load_v4(path, numerics=numerics, keep=keep)
        model.eval()
        report(2, 3)
        if weights != "fp32" and model.config.numerics != "exact":  # set by the checkpoint's own config
            raise RuntimeModelError(f"this checkpoint's config asks for {model.config.numerics} numerics, which runs "
                                    f"on its own weights: use --precision fp32, not {precision}")
        cls.place(model, device)
        if kept_bytes(model):
            pack_around_kept(model, weights)
        else:
            model.pack_weights(weights)
        report(3, 3)
        where = "" if device is None or device.type == "cpu" else f" on {device}"
        if kept_bytes(model):
            where += f", checkpoint {'/'.join(sorted(keep)).upper()} weights kept"
        loaded = LoadedModel(model=model, tokenizer=tokenizer, config=model.config, path=Path(path),
                             precision=f"{weights} weights, {model.config.numerics} numerics{where}", load_seconds=time.perf_counter() - start,
                             checkpoint_info={"format": "safetensors", "dialect": "deepseek_v4"})
        return cls(loaded, context_window=context_window, threads=threads, device=device, hot_kv_bytes=hot_kv_bytes)

    @staticmethod
    def place(model, device: torch.device | None) -> None:
        """Move the fp32 model to `device` before packing, so the packed copies are made there (a no-op on the
        CPU). CUDA packs as bf16 or keeps fp32: the int8/int4 formats are CPU kernels (see runtime/engine/device.py)."""
        if device is not None and device.type != "cpu":
            model.to(device)

    @property
    def model_id(self) -> str:
        return self.loaded.path.name

    def chat_format(self, *, thinking: bool = False) -> V4ChatFormat:
        return V4ChatFormat(self.tokenizer, thinking_mode="thinking" if thinking else "chat")

    def reset(self) -> None:
        """Erase the cache and every restore point (after a forget nothing of the old prompt may stay)."""
        self.start_afresh()
        self.restore_points.clear()

    @torch.inference_mode()
    def prefill(self, ids: list[int], *, cancel: threading.Event | None = None, all_logits: bool = False,
                restore_points: Sequence[int] = (), on_progress: PrefillProgress | None = None):
        """Make the cache hold `ids`: continue it, else go back to the longest restore point `ids` starts with,
        else restore from the attached prefix cache, else start afresh. The chunks end at `restore_points`
        (and at the end of the prompt), which become restore points themselves."""
        self.check_fits(len(ids))
        self.keep_named_points(ids, restore_points)
        n = self.kv.common_prefix(ids)
        if all_logits or n < len(self.kv.tokens) or (n == len(ids) and self.last_logits is None):
            if all_logits:
                self.reset()
                n = 0
            else:
                n = self.go_back(ids)
        if not all_logits and self.prefix_cache is not None and n < len(ids):
            n = self.restore_from_prefix_cache(ids, n)
            self.kv_report.prefill_tokens = len(ids) - n
        self.stats.reused_tokens += n
        self.stats.prefill_calls += 1
        if n == len(ids):
            return self.last_logits
        outputs = []
        splits = sorted({p for p in restore_points if n < p < len(ids)} | {len(ids)})
        s = n
        if on_progress is not None:
            on_progress(0, len(ids) - n)
        while s < len(ids):
            if cancel is not None and cancel.is_set():
                self.start_afresh()  # the restore points stay: a cancelled turn is resumed from them
                return None
            e = min(s + PREFILL_CHUNK, next(p for p in splits if p > s))
            chunk = torch.tensor(ids[s:e], device=self.device)
            if all_logits:
                outputs.append(self.model(chunk, self.cache).cpu())  # sampling and grammars work on host tensors
            else:
                self.last_logits = self.model.last_logits(chunk, self.cache).cpu()
            self.kv.tokens.extend(ids[s:e])
            self.stats.prefilled_tokens += chunk.shape[0]
            if self.hot_rows is not None:
                self.demote_oldest()
            if e in splits and not all_logits:
                self.remember_restore_point()
            if on_progress is not None:
                on_progress(e - n, len(ids) - n)
            s = e
        if all_logits:
            out = torch.cat(outputs)
            self.last_logits = out[-1]
            return out
        return self.last_logits

    def start_afresh(self) -> None:
        self.cache = self.model.new_cache()
        self.kv.tokens.clear()
        self.last_logits = None

    def remember_restore_point(self) -> None:
        """Keep the cache as it is now (sharing its append-only rows) as a point to come back to."""
        n = len(self.kv.tokens)
        self.restore_points.pop(n, None)
        self.restore_points[n] = RestorePoint(list(self.kv.tokens), self.cache.snapshot(), self.last_logits)
        while len(self.restore_points) > MAX_RESTORE_POINTS:
            del self.restore_points[next(iter(self.restore_points))]  # the oldest made

    def keep_named_points(self, ids: list[int], restore_points: Sequence[int]) -> None:
        """Restore points the caller names again (the end of system + tools, every request) count as the newest,
        so the eviction of the oldest never drops the one a compaction or the next session comes back to."""
        for p in restore_points:
            rp = self.restore_points.get(p)
            if rp is not None and ids[:p] == rp.tokens:
                self.restore_points[p] = self.restore_points.pop(p)

    def go_back(self, ids: list[int]) -> int:
        """Continue from the longest restore point `ids` starts with; else start afresh.
        Returns the number of tokens the cache now holds."""
        best = max((rp for rp in self.restore_points.values()
                    if len(rp.tokens) <= len(ids) and ids[: len(rp.tokens)] == rp.tokens),
                   key=lambda rp: len(rp.tokens), default=None)
        if best is None:
            self.start_afresh()
            return 0
        self.cache = best.cache.snapshot()  # the restore point itself stays reusable
        self.kv.tokens[:] = best.tokens
        self.last_logits = best.logits
        return len(best.tokens)

    # --- Engram KV: export / import (runtime/deepseek_v4/kv_export.py) ------------------------------

    def identity_fields(self, digest_cache: Path | None) -> ModelIdentity:
        return v4_identity(self, digest_cache)

    def export_prefix(self, n_tokens: int) -> KVSnapshot:
        """The cache at `n_tokens`: its current length or one of its restore points (a V4 cache cannot be cut)."""
        if n_tokens == len(self.kv.tokens) and n_tokens > 0 and self.last_logits is not None:
            return export_v4(self, self.cache, self.kv.tokens, self.last_logits)
        rp = self.restore_points.get(n_tokens)
        if rp is None:
            raise ValueError(f"a V4 cache exports only at a restore point or its length ({len(self.kv.tokens)}); "
                             f"{n_tokens} is neither (restore points: {sorted(self.restore_points)})")
        return export_v4(self, rp.cache, rp.tokens, rp.logits)

    def holds_prefix(self, ids: list[int]) -> bool:
        if ids and self.kv.tokens == ids and self.last_logits is not None:
            return True
        rp = self.restore_points.get(len(ids))
        return rp is not None and rp.tokens == ids

    def import_prefix(self, snapshot: KVSnapshot, *, limit: int | None = None) -> int:
        """Continue from `snapshot` (whole: `limit` below its length is refused). Raises SnapshotRefused
        before anything changes."""
        if limit is not None and limit < snapshot.length:
            raise SnapshotRefused(f"a V4 snapshot restores whole: {snapshot.length} tokens, not {limit}")
        cache, logits = import_v4(self, snapshot)
        self.cache, self.last_logits = cache, logits
        self.kv.tokens[:] = snapshot.tokens
        self.remember_restore_point()
        return snapshot.length

    @torch.inference_mode()
    def decode(self, token: int) -> torch.Tensor:
        self.last_logits = self.model.last_logits(torch.tensor([token], device=self.device), self.cache).cpu()
        self.kv.tokens.append(token)
        self.stats.decoded_tokens += 1
        if self.hot_rows is not None:
            self.demote_oldest()
        return self.last_logits

    def demote_oldest(self) -> None:
        """The tier policy: CSA layers' oldest compressed rows past the hot budget become warm (int8)."""
        for lc in self.cache.layers:
            demote_oldest(lc, self.hot_rows)

    def score(self, ids: list[int]) -> torch.Tensor:
        self.reset()
        return self.prefill(ids, all_logits=True)
