"""DeepSeek-V4 mixture of experts: sqrt-softplus gating with a selection bias (learned routing) or a
token-id table (`tid2eid`, hash routing in the first layers), clamped SwiGLU on routed and shared experts,
the routing weight applied before w2, everything accumulated in fp32."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import DeepseekV4Config
from . import numerics as qn
from .common import PackableLinear, stable_topk
from .weights import PackedWeight


class Gate(nn.Module):
    def __init__(self, cfg: DeepseekV4Config, hashed: bool) -> None:
        super().__init__()
        self.topk, self.scale, self.hashed = cfg.experts_per_token, cfg.routed_scaling_factor, hashed
        self.norm_topk = cfg.norm_topk_prob
        self.func = cfg.scoring_func
        self.weight = nn.Parameter(torch.zeros(cfg.n_routed_experts, cfg.hidden_size))
        if hashed:
            self.register_buffer("tid2eid", torch.zeros(cfg.vocab_size, cfg.experts_per_token, dtype=torch.long))
        else:
            self.register_buffer("bias", torch.zeros(cfg.n_routed_experts))

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (T, d) -> routing weights (T, k) and expert ids (T, k)."""
        logits = F.linear(x, self.weight)
        if self.func == "sqrtsoftplus":
            s = F.softplus(logits).sqrt()
        elif self.func == "sigmoid":
            s = logits.sigmoid()
        else:
            s = logits.softmax(-1)
        if self.hashed:
            idx = self.tid2eid[ids].long()
        else:
            idx = stable_topk(s + self.bias, self.topk)
        w = s.gather(1, idx)
        if self.norm_topk:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        return w * self.scale, idx


def clamped_swiglu(g: torch.Tensor, u: torch.Tensor, limit: float) -> torch.Tensor:
    if limit > 0:
        g, u = g.clamp(max=limit), u.clamp(-limit, limit)
    return F.silu(g) * u


class Experts(nn.Module):
    """Routed experts stacked: w1/w3 (E, I, d), w2 (E, d, I). Packed, each expert keeps [w1; w3] as one
    matrix (one pass over x) and w2."""

    def __init__(self, cfg: DeepseekV4Config) -> None:
        super().__init__()
        E, I, d = cfg.n_routed_experts, cfg.moe_intermediate_size, cfg.hidden_size
        self.w1 = nn.Parameter(torch.zeros(E, I, d))
        self.w3 = nn.Parameter(torch.zeros(E, I, d))
        self.w2 = nn.Parameter(torch.zeros(E, d, I))
        self.n_experts = E
        self.limit = cfg.swiglu_limit
        self.quant_act = False
        self.packed: list[tuple[PackedWeight, PackedWeight]] = []

    def pack(self, fmt: str) -> None:
        self.packed = [(PackedWeight(torch.cat((self.w1[e], self.w3[e])), fmt), PackedWeight(self.w2[e], fmt))
                       for e in range(self.n_experts)]
        for name in ("w1", "w2", "w3"):
            setattr(self, name, nn.Parameter(torch.empty(self.n_experts, 0, 0), requires_grad=False))

    def expert(self, e: int, xe: torch.Tensor, weight: torch.Tensor | float) -> torch.Tensor:
        """Expert e on its tokens xe (n, d), scaled by their routing weights (n, 1) -> (n, d) float32."""
        if self.quant_act:
            xe = qn.fp8_act_roundtrip(xe, 128)
        if self.packed:
            w13, w2 = self.packed[e]
            g, u = w13(xe).chunk(2, dim=-1)
        else:
            g, u = F.linear(xe, self.w1[e]), F.linear(xe, self.w3[e])
        h = clamped_swiglu(g, u, self.limit) * weight
        if self.quant_act:
            h = qn.fp8_act_roundtrip(h, 128)
        return w2(h) if self.packed else F.linear(h, self.w2[e])

    def forward(self, x: torch.Tensor, w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1 and self.packed:  # decode: the k experts' SwiGLU as one (k, I) batch
            chosen = idx[0].tolist()
            xb = x.to(torch.bfloat16)
            g, u = torch.cat([self.packed[e][0](xb) for e in chosen]).chunk(2, dim=-1)  # (k, I) each
            h = clamped_swiglu(g, u, self.limit) * w[0][:, None]
            return torch.stack([self.packed[e][1](h[i:i + 1]) for i, e in enumerate(chosen)]).sum(0)  # (1, d)
        out = torch.zeros(x.shape, dtype=torch.float32)
        flat = idx.flatten()
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=self.n_experts).tolist()
        tok = order // idx.shape[1]
        wts = w.flatten()[order]
        pos = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            t = tok[pos:pos + n]
            out.index_add_(0, t, self.expert(e, x[t], wts[pos:pos + n, None]))
            pos += n
        return out


class SharedExpert(nn.Module):
    def __init__(self, cfg: DeepseekV4Config) -> None:
        super().__init__()
        I, d = cfg.moe_intermediate_size * cfg.n_shared_experts, cfg.hidden_size
        self.w1, self.w3, self.w2 = PackableLinear(d, I), PackableLinear(d, I), PackableLinear(I, d)
        self.limit = cfg.swiglu_limit
        self.w13: PackedWeight | None = None

    def pack(self, fmt: str) -> None:
        self.w13 = PackedWeight(torch.cat((self.w1.weight, self.w3.weight)), fmt)
        self.w1.release()
        self.w3.release()
        self.w2.pack(fmt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.w13 is not None:
            g, u = self.w13(x).chunk(2, dim=-1)
        else:
            g, u = self.w1(x), self.w3(x)
        return self.w2(clamped_swiglu(g, u, self.limit))


class MoE(nn.Module):
    def __init__(self, cfg: DeepseekV4Config, layer: int) -> None:
        super().__init__()
        self.gate = Gate(cfg, hashed=layer < cfg.num_hash_layers)
        self.experts = Experts(cfg)
        self.shared_experts = SharedExpert(cfg) if cfg.n_shared_experts else None

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        w, idx = self.gate(x, ids)
        y = self.experts(x, w, idx)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)
        return y.to(x.dtype)
