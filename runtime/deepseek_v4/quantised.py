"""The checkpoint's own FP8 block-scaled and FP4 weights kept quantised (CUDA): the dense projections and the
routed experts multiply through the fused dequant matmuls of `kernels/block_matmul.py` (via the dispatcher)
instead of a copy de-quantised at load, so they take 1 (FP8) or 1/2 (FP4) byte per weight on the device.

Which weights stay quantised: those the model multiplies through `PackableLinear.forward` or the routed experts
(`KEEPABLE`); `wo_a` (bf16 in the reference) and anything the transformers layout repacks are de-quantised as
before. The CPU never keeps them (its path is bitwise what it was); `device.quantised_weight_formats` decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from ...kernels import dispatch
from .common import PackableLinear
from .moe import Experts, SharedExpert
from .attention import SparseAttention
from .weights import PackedWeight

# native names of the weights the model reads through PackableLinear.forward or the routed experts
KEEPABLE = re.compile(r"(\.attn\.(wq_a|wq_b|wkv|wo_b)|\.indexer\.wq_b|\.shared_experts\.w[123]|\.ffn\.experts\.\d+\.w[123]"
                      r"|^(model\.)?mtp\.\d+\.[eh]_proj)\.weight$")
FP8_BLOCK = 128


@dataclass(slots=True)
class QuantisedTensor:
    """A checkpoint weight as stored: fp8 (N, K) e4m3 bytes with (ceil(N/128), ceil(K/128)) ue8m0 bytes or float32
    scales, or fp4 (N, K/2) packed e2m1 with (N, K/32) ue8m0 bytes."""

    fmt: str
    q: torch.Tensor
    scale: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        n, k = self.q.shape
        return (n, 2 * k) if self.fmt == "fp4" else (n, k)


def as_bytes(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.uint8) if t.dtype in (torch.float8_e4m3fn, torch.float8_e8m0fnu, torch.int8) else t


class CheckpointWeight(nn.Module):
    """x W^T for x (..., K) -> (..., N) float32 with W kept in its checkpoint format (buffers, so `.to(device)`
    moves them). On CUDA the activations go in as bf16 (tensor cores); elsewhere (the interpreter tests, the
    references) as float32."""

    def __init__(self, t: QuantisedTensor) -> None:
        super().__init__()
        self.fmt = t.fmt
        self.out_features, self.in_features = t.shape
        self.register_buffer("q", as_bytes(t.q).contiguous())
        scale = as_bytes(t.scale)
        self.register_buffer("scale", (scale if scale.dtype == torch.uint8 else scale.float()).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        act = (flat.to(torch.bfloat16) if flat.is_cuda else flat.float()).contiguous()
        matmul = dispatch.block_fp8_linear if self.fmt == "fp8" else dispatch.fp4_linear
        return matmul(act, self.q, self.scale).view(*x.shape[:-1], self.out_features)

    def nbytes(self) -> int:
        return self.q.numel() + self.scale.numel() * self.scale.element_size()


class StackedWeights(nn.Module):
    """Weights side by side in the output, [w1; w3] of an expert: one matrix where their scale blocks line up."""

    def __init__(self, parts: list[CheckpointWeight]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(x) for p in self.parts], dim=-1)


def stack_rows(a: QuantisedTensor, b: QuantisedTensor) -> nn.Module:
    """[a; b] as one weight when their scales tile the rows (FP4 always, FP8 when a's rows end a 128-row block)."""
    if a.fmt == b.fmt and (a.fmt == "fp4" or a.shape[0] % FP8_BLOCK == 0):
        return CheckpointWeight(QuantisedTensor(a.fmt, torch.cat((as_bytes(a.q), as_bytes(b.q))),
                                                torch.cat((as_bytes(a.scale), as_bytes(b.scale)))))
    return StackedWeights([CheckpointWeight(a), CheckpointWeight(b)])


def attach(model: nn.Module, linears: dict[str, QuantisedTensor],
           experts: dict[str, dict[int, dict[str, QuantisedTensor]]]) -> None:
    """Put the kept weights on their modules and free the float parameters they replace. `linears`: module name
    -> weight; `experts`: Experts module name -> expert -> w1/w2/w3 (every expert of the module present)."""
    modules = dict(model.named_modules())
    for name, t in linears.items():
        linear = modules[name]
        linear.packed = CheckpointWeight(t)  # a submodule: moved with the model
        linear.release()
    for name, by_expert in experts.items():
        module: Experts = modules[name]
        module.packed = nn.ModuleList(
            nn.ModuleList((stack_rows(by_expert[e]["w1"], by_expert[e]["w3"]), CheckpointWeight(by_expert[e]["w2"])))
            for e in range(module.n_experts))
        for w in ("w1", "w2", "w3"):
            setattr(module, w, nn.Parameter(torch.empty(module.n_experts, 0, 0), requires_grad=False))


def kept(linear: PackableLinear) -> bool:
    return isinstance(linear.packed, CheckpointWeight)


@torch.no_grad()
def pack_around_kept(model, fmt: str) -> None:
    """`model.pack_weights(fmt)` for a model with kept checkpoint weights: every other projection, the experts and
    the LM head packed as `fmt`. A layer with a kept projection of x runs its projections one by one (they cannot
    be fused into one packed matrix)."""
    if fmt == "fp32":
        return
    for m in model.modules():
        if isinstance(m, Experts) and not m.packed:
            m.pack(fmt)
        elif isinstance(m, SharedExpert):
            if any(kept(p) for p in (m.w1, m.w2, m.w3)):
                for p in (m.w1, m.w2, m.w3):
                    if not kept(p):
                        p.pack(fmt)
            else:
                m.pack(fmt)
        elif isinstance(m, SparseAttention):
            pack_attention(m, fmt)
    model.head_packed = PackedWeight(model.head.weight, fmt)
    model.head.weight = nn.Parameter(torch.empty(0), requires_grad=False)
    model.weight_format = fmt


def pack_attention(m: SparseAttention, fmt: str) -> None:
    linears = m.x_projections() + [m.wq_b, m.wo_b] + ([m.indexer.wq_b] if m.ratio == 4 else [])
    if not any(kept(p) for p in linears):
        m.pack(fmt)
        return
    for p in linears:
        if not kept(p):
            p.pack(fmt)
    G = m.cfg.o_groups
    m.wo_a_groups = [PackedWeight(w, fmt) for w in m.wo_a.weight.view(G, m.cfg.o_lora_rank, -1)]
    m.wo_a.release()


def kept_bytes(model: nn.Module) -> int:
    return sum(m.nbytes() for m in model.modules() if isinstance(m, CheckpointWeight))
