"""Build a model from a checkpoint: resolve the architecture, allocate, stream weights in."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from ..config import ModelConfig
from ..loaders import open_checkpoint
from ..loaders import packed_cache
from ..tokenizer import Tokenizer

# precision -> (weight storage, activation dtype)
PRECISIONS: dict[str, tuple[str, torch.dtype]] = {
    "fp32": ("fp32", torch.float32),  # exact: the parity mode
    "bf16": ("bf16", torch.bfloat16),
    "int8": ("int8", torch.bfloat16),
    "int4": ("int4", torch.bfloat16),  # lossy unless the checkpoint is 4-bit already
    "auto": ("", torch.bfloat16),  # fast: int4 where the checkpoint stores 4-bit groups, else int8
}
FAST = "auto"
# Models this small also keep bf16 copies of their integer weights for prefill (1.5-1.8x faster prompt
# reading for at most 1 GiB more memory); larger ones read prompts through the integer kernels.
PREFILL_COPY_MAX_PARAMS = 500_000_000

LoadProgress = Callable[[int, int], None]  # (tensors read, tensors in the checkpoint), from the loading thread
Item = TypeVar("Item")


def counted(items: Iterable[Item], total: int, on_progress: LoadProgress) -> Iterator[Item]:
    """`items`, reporting after each one how many of `total` have gone by."""
    for done, item in enumerate(items, 1):
        yield item
        on_progress(done, total)


@runtime_checkable
class PackedStateModel(Protocol):
    """A model whose loaded weights can be cached on disk as they are stored (see loaders/packed_cache.py)."""

    def packed_state(self) -> dict[str, torch.Tensor]: ...

    def restore_packed_state(self, state: dict[str, torch.Tensor]) -> bool: ...


@dataclass(slots=True)
class LoadedModel:
    model: nn.Module
    tokenizer: Tokenizer
    config: ModelConfig
    path: Path
    precision: str
    load_seconds: float
    checkpoint_info: dict[str, Any]
    weights_from_cache: Path | None = None  # the packed-weight cache file mapped instead of reading the checkpoint


def model_class(dotted: str) -> type[nn.Module]:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def load_model(path: str | Path, *, precision: str = FAST, weight_cache: bool = True,
               on_progress: LoadProgress | None = None) -> LoadedModel:
    """weight_cache: map the packed weights from `$DSV4_HOME/cache/packed/` when a GGUF was loaded before with
    the same packing, and write them there after a first load. on_progress(done, total): checkpoint tensors read
    (all of them at once when the packed cache held the weights)."""
    start = time.perf_counter()
    weight_dtype, act_dtype = PRECISIONS[precision]
    ckpt = open_checkpoint(path)  # validates header, config and tokenizer before any weight is read
    report = on_progress or (lambda done, total: None)
    total = len(ckpt.tensor_names())
    report(0, total)
    if precision == "auto":
        weight_dtype = "int4" if ckpt.linear_bits() == 4 else "int8"
    cls = model_class(ckpt.arch.model_class)
    prefill_copy = precision == "auto" and ckpt.config.param_count() <= PREFILL_COPY_MAX_PARAMS
    model = cls(ckpt.config, weight_dtype=weight_dtype, act_dtype=act_dtype, prefill_copy=prefill_copy)
    cached = None
    if weight_cache and isinstance(model, PackedStateModel) and Path(ckpt.path).is_file():
        packing = f"{type(model).__qualname__}|{weight_dtype}|{act_dtype}|prefill_copy={prefill_copy}"
        cached = packed_cache.cached_file_for(Path(ckpt.path), packing)
    state = packed_cache.load_packed(cached) if cached is not None else None
    restored = state is not None and model.restore_packed_state(state)
    if not restored:
        model.load_weights(counted(ckpt.tensors(keep_q4=weight_dtype == "int4"), total, report))
        if cached is not None and packed_cache.save_packed(cached, model.packed_state()):
            # adopt the file just written, as a later load would: the packed weights become clean file pages and
            # the bf16 prefill copies leave the resident set after each chunk, instead of staying anonymous memory
            remapped = packed_cache.load_packed(cached)
            if remapped is not None:
                model.restore_packed_state(remapped)
    report(total, total)
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=ckpt.tokenizer,
        config=ckpt.config,
        path=Path(ckpt.path),
        precision=precision if precision != "auto" else f"auto ({weight_dtype} weights, bf16 activations)",
        load_seconds=time.perf_counter() - start,
        checkpoint_info=ckpt.describe(),
        weights_from_cache=cached if restored else None,
    )
