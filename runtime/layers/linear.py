"""Linear layers whose weights live in fp32, bf16, int8 (per-row scales) or int4 (groups of 32 with scale and
zero), chosen when the model is built.

The integer formats are for speed on CPU: at batch 1 a decode step is a series of matrix-vector products
bound by memory bandwidth, and `torch._weight_int8pack_mm` / `_weight_int4pack_mm_for_cpu` (bf16
activations) read a quarter / an eighth of the bytes of fp32. int4 is used where the checkpoint already
stores 4-bit groups of 32 (GGUF Q4_0/Q4_1): requantising those recovers the stored integers exactly, so
only the scales are rounded (to bf16). fp32 is the parity mode (`models score`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..loaders import mapped_pages
from ..quant import Q4Groups

WEIGHT_DTYPES = ("fp32", "bf16", "int8", "int4")
INT4_GROUP = 32
# From this many rows (prefill chunks) a layer with a bf16 copy uses it: bf16 GEMM beats the integer kernels
# by ~1.8x at 512 rows, while single-row decode stays on the integer weights (it is bandwidth bound).
PREFILL_MIN_ROWS = 16


def quantize_rows_int8(w: torch.Tensor, scale_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: w ~= q * scale[:, None]. In row blocks, so a 50k-row table needs no full-size temporaries."""
    q = torch.empty(w.shape, dtype=torch.int8)  # (N, K)
    scale = torch.empty(w.shape[0], dtype=scale_dtype)  # (N,)
    for r in range(0, w.shape[0], 4096):
        block = w[r : r + 4096]
        scale[r : r + 4096] = (block.abs().amax(dim=1).clamp(min=1e-12) / 127.0).to(scale_dtype)
        q[r : r + 4096] = torch.round(block / scale[r : r + 4096].float()[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


def quantize_groups_int4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric 4-bit groups of 32 along K: w ~= (q - 8) * scale + zero, as the int4pack kernel computes."""
    N, K = w.shape
    g = w.view(N, K // INT4_GROUP, INT4_GROUP)  # (N, K/G, G)
    lo, hi = g.amin(dim=-1), g.amax(dim=-1)  # (N, K/G)
    scale = ((hi - lo) / 15.0).clamp(min=1e-12)
    q = torch.round((g - lo[..., None]) / scale[..., None]).clamp_(0, 15).to(torch.int32).view(N, K)
    zero = lo + 8.0 * scale
    return q, torch.stack([scale, zero], dim=-1).transpose(0, 1)  # (N, K) int32, (K/G, N, 2) fp32


class Linear(nn.Module):
    """y = x W^T (+ b) on 2-D inputs (tokens, features). Merged projections load one row block per shard."""

    def __init__(
        self,
        in_features: int,
        out_features: int | list[int],
        *,
        bias: bool,
        weight_dtype: str,
        act_dtype: torch.dtype,
        prefill_copy: bool = False,
    ) -> None:
        super().__init__()
        assert weight_dtype in WEIGHT_DTYPES, weight_dtype
        sizes = out_features if isinstance(out_features, list) else [out_features]
        self.shard_offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        self.shard_sizes = sizes
        self.in_features, self.out_features = in_features, sum(sizes)
        self.weight_dtype, self.act_dtype = weight_dtype, act_dtype
        self.bias = nn.Parameter(torch.zeros(self.out_features, dtype=act_dtype), requires_grad=False) if bias else None
        self.scale: nn.Parameter | None = None
        self._staged: tuple[torch.Tensor, torch.Tensor] | None = None
        self.prefill_weight: nn.Parameter | None = None
        # set when the prefill copy is mapped from the packed-weight cache: its pages are handed back after each use
        self.release_prefill_pages = False
        if prefill_copy and weight_dtype in ("int8", "int4"):
            self.prefill_weight = nn.Parameter(torch.empty(self.out_features, in_features, dtype=torch.bfloat16), requires_grad=False)
        if weight_dtype == "int4":
            # staged unpacked until every shard is in: the packed layout interleaves rows, so shards cannot be packed alone
            self._staged = (torch.empty(self.out_features, in_features, dtype=torch.uint8),
                            torch.empty(in_features // INT4_GROUP, self.out_features, 2))
            self._pending = set(range(len(sizes)))  # packed as soon as the last shard arrives, to bound peak memory
            self.weight = nn.Parameter(torch.empty(0, dtype=torch.uint8), requires_grad=False)
            return
        storage = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}[weight_dtype]
        self.weight = nn.Parameter(torch.empty(self.out_features, in_features, dtype=storage), requires_grad=False)
        if weight_dtype == "int8":
            assert act_dtype == torch.bfloat16, "the CPU int8 kernel is only fast with bf16 activations"
            self.scale = nn.Parameter(torch.empty(self.out_features, dtype=act_dtype), requires_grad=False)

    @torch.no_grad()
    def load_shard(self, shard: int, weight: torch.Tensor | Q4Groups | None = None, bias: torch.Tensor | None = None) -> None:
        rows = slice(self.shard_offsets[shard], self.shard_offsets[shard] + self.shard_sizes[shard])
        if isinstance(weight, Q4Groups) and self.weight_dtype != "int4":
            weight = weight.dequantize()
        if weight is not None:
            assert weight.shape == (self.shard_sizes[shard], self.in_features), (weight.shape, self.shard_sizes[shard])
            if self.prefill_weight is not None:
                self.prefill_weight[rows] = (weight.dequantize() if isinstance(weight, Q4Groups) else weight).to(torch.bfloat16)
            if isinstance(weight, Q4Groups):  # the stored integers, as they are
                self._staged[0][rows] = weight.q
                self._staged[1][:, rows] = torch.stack([weight.scale, weight.low + 8.0 * weight.scale], dim=-1).transpose(0, 1)
            elif self.weight_dtype == "int4":
                q, scale_zero = quantize_groups_int4(weight)
                self._staged[0][rows] = q
                self._staged[1][:, rows] = scale_zero
            elif self.weight_dtype == "int8":
                q, scale = quantize_rows_int8(weight, self.act_dtype)
                self.weight[rows] = q
                self.scale[rows] = scale
            else:
                self.weight[rows] = weight.to(self.weight.dtype)
        if bias is not None:
            self.bias[rows] = bias.to(self.act_dtype)
        if weight is not None and self.weight_dtype == "int4":
            self._pending.discard(shard)
            if not self._pending:
                self.finalize()

    @torch.no_grad()
    def finalize(self) -> None:
        """Pack int4 weights; runs when the last shard arrives (and again harmlessly after loading)."""
        if self._staged is not None:
            q, scale_zero = self._staged
            self.weight = nn.Parameter(torch._convert_weight_to_int4pack_for_cpu(q.to(torch.int32), 1), requires_grad=False)  # (N, K/2)
            self.scale = nn.Parameter(scale_zero.to(self.act_dtype), requires_grad=False)  # (K/G, N, 2)
            self._staged = None

    def discard_staging(self) -> None:
        """Weights came packed from the cache: the int4 staging buffers (never touched) are dropped unfilled."""
        self._staged = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, in) -> (T, out)
        if self.prefill_weight is not None and x.shape[0] >= PREFILL_MIN_ROWS:
            y = F.linear(x, self.prefill_weight, self.bias)
            if self.release_prefill_pages:
                mapped_pages.release(self.prefill_weight)
            return y
        if self.weight_dtype == "int4":
            y = torch._weight_int4pack_mm_for_cpu(x, self.weight, INT4_GROUP, self.scale)
            return y if self.bias is None else y + self.bias
        if self.scale is not None:
            y = torch._weight_int8pack_mm(x, self.weight, self.scale)
            return y if self.bias is None else y + self.bias
        return F.linear(x, self.weight, self.bias)
