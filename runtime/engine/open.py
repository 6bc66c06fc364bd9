"""One entry point from a checkpoint path to an engine: the checkpoint's kind decides which."""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Callable
from typing import Literal

from .device import precision_on, resolve_device
from .protocol import Engine

CheckpointKind = Literal["deepseek_v4", "llama"]


def checkpoint_kind(path: str | Path) -> CheckpointKind:
    """`deepseek_v4` for a V4 checkpoint folder (official or transformers layout), else `llama` (GGUF files and
    HF llama-family folders, whose own loader validates them)."""
    path = Path(path)
    if not path.is_dir():
        return "llama"
    for cfg in (path / "config.json", path / "inference" / "config.json"):
        if cfg.is_file():
            try:
                raw = json.loads(cfg.read_text())
            except (OSError, ValueError):
                return "llama"  # the llama loader reports the broken config with its own clear error
            is_v4 = isinstance(raw, dict) and (raw.get("model_type") == "deepseek_v4" or "compress_ratios" in raw)
            return "deepseek_v4" if is_v4 else "llama"
    return "llama"


def open_engine(path: str | Path, *, precision: str | None = None, context_window: int | None = None,
                numerics: str | None = None, threads: int | None = None, device: str | None = None,
                hot_kv_bytes: int | None = None, on_progress: Callable[[int, int], None] | None = None) -> Engine:
    """Load the engine for `path`. `precision` None means each engine's fast default (`auto`); `numerics` applies
    to DeepSeek-V4 only; `device` is cpu (None), cuda or auto (CUDA when available). Raises RuntimeModelError
    subclasses (clear messages) before reading weights where it can. `hot_kv_bytes`: the live warm tier's budget
    (V4: compressed rows past it kept int8, runtime/deepseek_v4/kv_tiers.py; llama: the oldest K/V positions,
    runtime/engine/kv_tiers.py). `on_progress(done, total)` from the loading thread: checkpoint tensors read
    (llama), load steps (DeepSeek-V4)."""
    where = resolve_device(device)
    if checkpoint_kind(path) == "deepseek_v4":
        from ..deepseek_v4.engine import V4Engine

        if numerics == "official" and precision in (None, "auto"):
            precision = "fp32"  # the official numerics simulation is defined on the checkpoint's own weights
        precision = precision_on(where, precision)
        return V4Engine.load(path, precision=precision or "auto", context_window=context_window, numerics=numerics,
                             threads=threads, device=where, hot_kv_bytes=hot_kv_bytes, on_progress=on_progress)
    from .engine import LlamaEngine
    from .loader import FAST

    precision = precision_on(where, precision)

    return LlamaEngine.load(path, precision=precision or FAST, context_window=context_window, threads=threads,
                            device=where, hot_kv_bytes=hot_kv_bytes, on_progress=on_progress)
