"""The DeepSeek-V4 one-token kernels (`v4_decode.c`) through ctypes: built once per machine like the llama CPU
decode kernels (`runtime/layers/cpu_decode.py`, same cache directory and rules), None where no C compiler
builds them or `DSV4_V4_KERNELS=0` (then decode stays on the torch ops).

Every wrapper takes float32 contiguous CPU tensors and returns new tensors (nothing the cache might keep is
written twice); the decode step itself (`one_token.py`) calls the C functions (`V4Kernels.c`) with addresses. int8 weights are `PackedWeight`s of format int8: (N, K) int8 rows with bf16 scales.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import os
import platform
from pathlib import Path

import torch

from ..layers.cpu_decode import build_library
from .weights import PackedWeight

SOURCES = tuple(Path(__file__).with_name(name) for name in ("v4_decode.c", "v4_head.c", "v4_compressor.c", "v4_layer.c"))
HEADERS = (Path(__file__).with_name("v4_common.h"), Path(__file__).parents[1] / "layers" / "cpu_simd.h")
P, I64, F32, INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int
GATE_FUNCS = {"sqrtsoftplus": 0, "sigmoid": 1, "softmax": 2}
SIGNATURES = {
    "v4_int8_gemv": ([P, P, P, P, I64, I64, INT], None),
    "v4_output_proj": ([P, INT, I64, I64, P, P, P, P, I64, P, INT], None),
    "v4_norm_rope": ([P, P, I64, I64, P, F32, INT, INT, P, I64, INT], INT),
    "v4_mhc_pre": ([P, INT, I64, P, P, P, F32, ctypes.c_double, INT, P, P, P], INT),
    "v4_mhc_post": ([P, P, P, INT, I64, P], None),
    "v4_indexer_topk": ([P, P, F32, INT, I64, P, I64, I64, P], None),
    "v4_attend_one": ([P, INT, I64, P, I64, P, I64, P, P, I64, P, F32, P, INT, P, I64], INT),
    "v4_moe_gate": ([P, P, I64, I64, INT, P, P, I64, INT, F32, P, P], INT),
    "v4_moe": ([P, I64, P, I64, INT, P, P, I64, P, I64, INT, F32, I64, I64, P, P, P, P, INT, F32, P, INT], INT),
    "v4_head_logits": ([P, P, P, I64, I64, I64, P, INT], INT),
    "v4_collapse": ([P, INT, I64, P, P, P, F32, F32, P, P], INT),
    "v4_compress_step": ([P, P, P, INT, I64, INT, I64, P, P, INT, P, P, INT, P, F32, INT, P, P], INT),
    "v4_layer_plan_slots": ([], INT),
    "v4_exp": ([P, P, I64], None),
    "v4_layer_step": ([P, P, P, P, I64, P, P, I64, P, *[P, INT, P, INT, P, I64, P] * 2, INT], INT),
}


def int8_rows(w: PackedWeight) -> bool:
    """The layout the kernels read: (N, K) int8 rows, contiguous, with (N,) bf16 scales."""
    return (w.fmt == "int8" and w.q.dtype == torch.int8 and w.q.dim() == 2 and w.q.is_contiguous() and not w.q.is_cuda
            and w.scale.dtype == torch.bfloat16 and w.scale.shape == w.q.shape[:1] and w.scale.is_contiguous())


class WeightTable:
    """Raw pointers of int8 weights and their scales, for the kernels that take several matrices in one call.
    Holds the tensors, so the pointers stay valid as long as the table; a deep copy (of the model) points at
    the copied tensors."""

    def __init__(self, weights: list[PackedWeight]) -> None:
        if not all(map(int8_rows, weights)):
            raise ValueError("the V4 one-token kernels take contiguous int8 rows with bf16 scales only")
        self.set([(w.q, w.scale) for w in weights])

    def set(self, tensors: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.tensors = tensors
        self.q = (P * len(tensors))(*(q.data_ptr() for q, _ in tensors))
        self.scale = (P * len(tensors))(*(s.data_ptr() for _, s in tensors))

    def __deepcopy__(self, memo: dict) -> WeightTable:
        out = WeightTable.__new__(WeightTable)
        out.set(copy.deepcopy(self.tensors, memo))
        return out


def ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class V4Kernels:
    def __init__(self, library: ctypes.CDLL) -> None:
        for name, (args, result) in SIGNATURES.items():
            fn = getattr(library, name)
            fn.argtypes, fn.restype = args, result
            setattr(self, "_" + name.removeprefix("v4_"), fn)
        self.c = library  # the C functions with their signatures: `one_token` passes addresses of its own buffers

    def __deepcopy__(self, memo: dict) -> V4Kernels:
        return self  # the loaded library: stateless and shared by every model of the process

    def gemv(self, w: PackedWeight, x: torch.Tensor) -> torch.Tensor:
        """x (1, K) float32 -> x W^T (1, N) float32, as `PackedWeight.__call__` computes it for int8."""
        N, K = w.q.shape
        out = torch.empty(1, N)
        self._int8_gemv(x.data_ptr(), w.q.data_ptr(), w.scale.data_ptr(), out.data_ptr(), N, K, torch.get_num_threads())
        return out

    def mhc_pre(self, h: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor, norm_eps: float,
                eps: float, iters: int, norm_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h (1, hc, d) -> the sub-layer's normed input (1, d) and the mixes (hc post gates, hc*hc comb)."""
        _, hc, d = h.shape
        x, mix = torch.empty(1, d), torch.empty(hc + hc * hc)
        if self._mhc_pre(h.data_ptr(), hc, d, fn.data_ptr(), base.data_ptr(), scale.data_ptr(), norm_eps, eps, iters,
                         norm_weight.data_ptr(), x.data_ptr(), mix.data_ptr()):
            raise ValueError(f"mHC with {hc} streams is not supported by the V4 kernels")
        return x, mix

    def mhc_post(self, o: torch.Tensor, h: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        _, hc, d = h.shape
        out = torch.empty_like(h)
        self._mhc_post(o.data_ptr(), h.data_ptr(), mix.data_ptr(), hc, d, out.data_ptr())
        return out

    def indexer_topk(self, q: torch.Tensor, head_w: torch.Tensor, w_scale: float, heads: int, keys: torch.Tensor,
                     k: int) -> torch.Tensor:
        """One query's heads (heads * hd,) and head weights (heads,) * w_scale over keys (n, hd) -> the best k (k,)."""
        n, hd = keys.shape
        k = min(k, n)
        idx = torch.empty(k, dtype=torch.long)
        self._indexer_topk(q.data_ptr(), head_w.data_ptr(), w_scale, heads, hd, keys.data_ptr(), n, k, idx.data_ptr())
        return idx

    def attend_one(self, q: torch.Tensor, heads: int, tail: torch.Tensor | None, fresh: torch.Tensor,
                   comp: torch.Tensor | None, comp_idx: torch.Tensor | None, sink: torch.Tensor, scale: float, rope: int,
                   inv_freq: torch.Tensor, pos: int) -> torch.Tensor:
        D = fresh.shape[-1]
        n_tail = 0 if tail is None else tail.shape[0]
        n_comp = 0 if comp is None else comp_idx.shape[0] if comp_idx is not None else comp.shape[0]
        out = torch.empty(1, heads * D)
        status = self._attend_one(q.data_ptr(), heads, D, ptr(tail), n_tail, fresh.data_ptr(), fresh.shape[0], ptr(comp),
                         ptr(comp_idx), n_comp, sink.data_ptr(), scale, out.data_ptr(), rope, inv_freq.data_ptr(), pos)
        if status:
            raise ValueError(f"rotary width {rope} is not supported by the V4 kernels")
        return out

    def moe_gate(self, x: torch.Tensor, weight: torch.Tensor, func: str, bias: torch.Tensor | None,
                 hash_row: torch.Tensor | None, k: int, norm_topk: bool, route_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        E, d = weight.shape
        idx, w = torch.empty(k, dtype=torch.long), torch.empty(k)
        if self._moe_gate(x.data_ptr(), weight.data_ptr(), E, d, GATE_FUNCS[func], ptr(bias), ptr(hash_row), k,
                          int(norm_topk), route_scale, idx.data_ptr(), w.data_ptr()):
            raise ValueError(f"{k} of {E} experts: more than the V4 kernels take")
        return idx, w

    def moe(self, x: torch.Tensor, gate_weight: torch.Tensor, func: str, bias: torch.Tensor | None,
            hash_table: torch.Tensor | None, ids: torch.Tensor, k: int, norm_topk: bool, route_scale: float,
            w13: WeightTable, w2: WeightTable, inter: int, inter_shared: int, shared: bool, limit: float) -> torch.Tensor:
        """One token's MoE (gate, the k chosen experts, the shared expert) -> (1, d). The tables hold the routed
        experts and then the shared one; hash routing reads row ids[0] of `hash_table` (vocab, k) int64."""
        E, d = gate_weight.shape
        out = torch.empty(1, d)
        rows = 0 if hash_table is None else hash_table.shape[0]
        moe_status(self._moe(x.data_ptr(), d, gate_weight.data_ptr(), E, GATE_FUNCS[func], ptr(bias), ptr(hash_table), rows,
                             ids.data_ptr(), k, int(norm_topk), route_scale, inter, inter_shared, w13.q, w13.scale, w2.q,
                             w2.scale, int(shared), limit, out.data_ptr(), torch.get_num_threads()), E, k)
        return out

    def head_logits(self, w: PackedWeight, h: torch.Tensor, top: int) -> torch.Tensor:
        """h (1, K) -> (1, N) logits: the int8 product, its best `top` recomputed in float32 (`head_logits`)."""
        N, K = w.q.shape
        out = torch.empty(1, N)
        if self._head_logits(h.data_ptr(), w.q.data_ptr(), w.scale.data_ptr(), N, K, top, out.data_ptr(),
                             torch.get_num_threads()):
            raise ValueError(f"refining {top} of {N} logits is more than the V4 kernels take")
        return out

    def collapse(self, h: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor, norm_eps: float,
                 hc_eps: float, norm_weight: torch.Tensor) -> torch.Tensor:
        """h (1, hc, d) -> the normed hidden state (1, d), as `collapse_streams` and the final norm."""
        _, hc, d = h.shape
        out = torch.empty(1, d)
        if self._collapse(h.data_ptr(), hc, d, fn.data_ptr(), base.data_ptr(), scale.data_ptr(), norm_eps, hc_eps,
                          norm_weight.data_ptr(), out.data_ptr()):
            raise ValueError(f"mHC with {hc} streams is not supported by the V4 kernels")
        return out


def moe_status(status: int, experts: int, k: int) -> None:
    if status == 1:
        raise ValueError(f"the hashed expert ids are out of range for {experts} experts")
    if status == 3:
        raise ValueError("the token id is out of range of the hash-routing table")
    if status:
        raise ValueError(f"{k} of {experts} experts: more than the V4 kernels take")


@functools.cache
def v4_kernels() -> V4Kernels | None:
    if os.environ.get("DSV4_V4_KERNELS", "1") == "0" or platform.system() != "Linux":
        return None
    from dsv4.home import dsv4_home  # the one home rule, importable from every layer

    library = build_library(dsv4_home() / "cache" / "kernels", SOURCES, HEADERS)
    return V4Kernels(ctypes.CDLL(str(library))) if library is not None else None
