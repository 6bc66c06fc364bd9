"""Build a model from a checkpoint: resolve the architecture, allocate, stream weights in."""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import ModelConfig
from ..loaders import open_checkpoint
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


@dataclass(slots=True)
class LoadedModel:
    model: nn.Module
    tokenizer: Tokenizer
    config: ModelConfig
    path: Path
    precision: str
    load_seconds: float
    checkpoint_info: dict[str, Any]


def model_class(dotted: str) -> type[nn.Module]:
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def load_model(path: str | Path, *, precision: str = FAST) -> LoadedModel:
    start = time.perf_counter()
    weight_dtype, act_dtype = PRECISIONS[precision]
    ckpt = open_checkpoint(path)  # validates header, config and tokenizer before any weight is read
    if precision == "auto":
        weight_dtype = "int4" if ckpt.linear_bits() == 4 else "int8"
    cls = model_class(ckpt.arch.model_class)
    prefill_copy = precision == "auto" and ckpt.config.param_count() <= PREFILL_COPY_MAX_PARAMS
    model = cls(ckpt.config, weight_dtype=weight_dtype, act_dtype=act_dtype, prefill_copy=prefill_copy)
    model.load_weights(ckpt.tensors(keep_q4=weight_dtype == "int4"))
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=ckpt.tokenizer,
        config=ckpt.config,
        path=Path(ckpt.path),
        precision=precision if precision != "auto" else f"auto ({weight_dtype} weights, bf16 activations)",
        load_seconds=time.perf_counter() - start,
        checkpoint_info=ckpt.describe(),
    )
