"""Decode-speed weight formats for the DeepSeek-V4 model: its projections packed as bf16, int8 (per-row
scales) or int4 (groups of 32), replacing the fp32 copies after loading.

A decode step on CPU is a chain of matrix-vector products bound by memory bandwidth: the 129k-row LM head
alone reads 530 MB per token in fp32. int8 reads a quarter of that through `torch._weight_int8pack_mm` and
int4 an eighth through `_weight_int4pack_mm_for_cpu` (both take bf16 activations). fp32 stays the parity
mode: `models score` and the oracle tests never pack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..layers.embedding import REFINE_TOP
from ..layers.linear import INT4_GROUP, quantize_groups_int4, quantize_rows_int8

PACKED_FORMATS = ("bf16", "int8", "int4")


class PackedWeight:
    """W (N, K) in one of PACKED_FORMATS; calling it computes x W^T for x (T, K) -> (T, N) float32."""

    __slots__ = ("fmt", "q", "scale", "out_features")

    def __init__(self, w: torch.Tensor, fmt: str) -> None:
        assert fmt in PACKED_FORMATS, fmt
        N, K = w.shape
        w = w.float().contiguous()
        # the int4 packer needs whole groups along K and rows in multiples of 16; int8 covers other shapes
        if fmt == "int4" and (K % INT4_GROUP or N % 16):
            fmt = "int8"
        self.fmt, self.out_features = fmt, N
        if fmt == "bf16":
            self.q, self.scale = w.to(torch.bfloat16), None  # (N, K)
        elif fmt == "int8":
            self.q, self.scale = quantize_rows_int8(w, torch.bfloat16)  # (N, K) int8, (N,)
        else:
            q, scale_zero = quantize_groups_int4(w)
            self.q = torch._convert_weight_to_int4pack_for_cpu(q, 1)  # (N, K/2)
            self.scale = scale_zero.to(torch.bfloat16)  # (K/G, N, 2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        xb = x.to(torch.bfloat16)
        if self.fmt == "int8":
            y = torch._weight_int8pack_mm(xb, self.q, self.scale)
        elif self.fmt == "int4":
            y = torch._weight_int4pack_mm_for_cpu(xb, self.q, INT4_GROUP, self.scale)
        else:
            y = F.linear(xb, self.q)
        return y.float()

    def rows(self, idx: torch.Tensor) -> torch.Tensor | None:
        """Dequantised rows (*idx.shape, K) float32, or None for int4 (its packed layout interleaves rows)."""
        if self.fmt == "int8":
            return self.q[idx].float() * self.scale[idx].float()[..., None]
        if self.fmt == "bf16":
            return self.q[idx].float()
        return None

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.q, self.scale) if t is not None)


def head_logits(packed: PackedWeight, h: torch.Tensor, exact_rows=None) -> torch.Tensor:
    """LM head through packed weights: (T, d) -> (T, V) float32. The kernels round logits to bf16, so close
    candidates tie and greedy decoding flips: the best REFINE_TOP are recomputed in float32 from the
    dequantised rows (int8/bf16) or from `exact_rows(idx)` when given."""
    from .common import stable_topk  # common imports this module

    coarse = packed(h)  # (T, V)
    # ties to the lower row, as the C head of one-token steps (topk's order of ties is unspecified, and a tie at
    # the cut would leave a different row coarse in the two paths)
    top = stable_topk(coarse, REFINE_TOP)  # (T, k)
    rows = packed.rows(top) if exact_rows is None else exact_rows(top)  # (T, k, d)
    if rows is None:
        return coarse
    return coarse.scatter_(1, top, torch.bmm(rows, h.float()[:, :, None])[:, :, 0])
