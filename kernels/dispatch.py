"""Which implementation a hot path runs: the Triton kernel for CUDA tensors when triton is importable and the
kernels are on, the pure-torch reference everywhere else.

The kernel files (and triton) are imported on first use, so a CPU process never imports triton.
The V4 model asks `use_triton` first and keeps its own code path when it is False, so its CPU results stay
bitwise what they were. `DSV4_KERNELS=0` (or `kernels_enabled(False)`) turns the kernels off on CUDA too:
the torch path, for comparison and benchmarks."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import torch

# the innermost setting: "off", "cuda" (Triton for CUDA tensors) or "everywhere" (CPU tensors too: tests only)
_mode: list[str] = ["cuda" if os.environ.get("DSV4_KERNELS", "1") != "0" else "off"]


@contextmanager
def kernels_enabled(enabled: bool, *, on_cpu: bool = False) -> Iterator[None]:
    """Within the block the CUDA hot paths run Triton (True) or the torch code (False). `on_cpu` runs the
    kernels on CPU tensors too, through the Triton interpreter (TRITON_INTERPRET=1): how the CPU tests run
    the model's kernel paths."""
    if on_cpu and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("kernels on CPU tensors need the Triton interpreter (TRITON_INTERPRET=1)")
    _mode.append("off" if not enabled else "everywhere" if on_cpu else "cuda")
    try:
        yield
    finally:
        _mode.pop()


@functools.cache
def triton_installed() -> bool:
    """Without importing it: a CPU process never pays triton's import."""
    return importlib.util.find_spec("triton") is not None


def kernels_on() -> bool:
    """Whether CUDA tensors would run the kernels now (the setting, not whether triton is installed)."""
    return _mode[-1] != "off"


def use_triton(t: torch.Tensor) -> bool:
    mode = _mode[-1]
    return (mode == "everywhere" or (mode == "cuda" and t.is_cuda)) and triton_installed()


def kernel_module(name: str) -> ModuleType:
    return importlib.import_module(f"{__package__}.{name}")


def _pick(name: str, t: torch.Tensor, fn: str):
    mod = kernel_module(name)
    return getattr(mod, fn if use_triton(t) else f"{fn}_ref")


def sparse_attention(q, kv, idx, sink, scale, *, comp=None, warm=None, out=None):
    """(S, H, D) queries over their candidate rows of kv (then comp) -> (S, H, D); see kernels/sparse_attention.py.
    `warm` (decode): a `kv_quant.QuantizedKV` whose every row is a candidate too, read quantised."""
    if warm is not None:
        return _pick("quant_attention", q, "sparse_quant_decode_attention")(q, kv, idx, sink, scale, comp=comp,
                                                                            warm=warm, out=out)
    fn = "sparse_attention_decode" if q.shape[0] == 1 else "sparse_attention_prefill"
    return _pick("sparse_attention", q, fn)(q, kv, idx, sink, scale, comp=comp, out=out)


def indexer_topk(q, keys, weights, k, positions, *, causal=True):
    return _pick("indexer_topk", q, "indexer_topk")(q, keys, weights, k, positions, causal=causal)


def compressor_pool(kv, score, ape, prev_kv, prev_score, ratio, *, out=None):
    return _pick("compressor_pool", kv, "compressor_pool")(kv, score, ape, prev_kv, prev_score, ratio, out=out)


def mhc_pre_one_token(h, fn, base, scale, norm_eps, hc_eps, iters):
    return _pick("mhc_mix", h, "mhc_pre_one_token")(h, fn, base, scale, norm_eps, hc_eps, iters)


def block_fp8_linear(x, w, scale, *, out=None):
    return _pick("block_matmul", x, "block_fp8_linear")(x, w, scale, out=out)


def fp4_linear(x, w, scale, *, out=None):
    return _pick("block_matmul", x, "fp4_linear")(x, w, scale, out=out)


def quant_decode_attention(q, kv, sink, scale, *, out=None):
    return _pick("quant_attention", q, "quant_decode_attention")(q, kv, sink, scale, out=out)


def quantize_kv(x, fmt):
    """(N, D) rows -> a `kv_quant.QuantizedKV` on x's device; see kernels/kv_quant.py."""
    return _pick("kv_quant", x, "quantize_kv")(x, fmt)


def dequantize_kv(kv, dtype=torch.float32):
    return _pick("kv_quant", kv.codes, "dequantize_kv")(kv, dtype)
