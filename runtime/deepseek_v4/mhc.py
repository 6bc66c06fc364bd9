"""Manifold-constrained hyper-connections (mHC) of DeepSeek-V4: the residual stream is `hc_mult` streams;
each sub-layer reads a weighted collapse of them (`pre`) and writes back through a Sinkhorn-normalised
mixing matrix plus a gated copy of its output (`post`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DeepseekV4Config
from .common import rms_unweighted


def sinkhorn_4x4(m: list[float], iters: int, eps: float) -> list[float]:
    """The Sinkhorn normalisation of `HyperConnection.pre` for one token with 4 streams, in Python floats:
    16 values row-major in and out.

    A decode step runs it at every mHC site (2 per layer); as tensor ops its ~120 tiny kernels cost ~250 us
    per site, unrolled scalars ~17 us. Same operations and order (column pass, then row/column pairs), in
    float64, so it agrees with the tensor form to float32 rounding."""
    a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3 = m
    for it in range(iters):
        if it:
            s = a0 + a1 + a2 + a3 + eps
            a0, a1, a2, a3 = a0 / s, a1 / s, a2 / s, a3 / s
            s = b0 + b1 + b2 + b3 + eps
            b0, b1, b2, b3 = b0 / s, b1 / s, b2 / s, b3 / s
            s = c0 + c1 + c2 + c3 + eps
            c0, c1, c2, c3 = c0 / s, c1 / s, c2 / s, c3 / s
            s = d0 + d1 + d2 + d3 + eps
            d0, d1, d2, d3 = d0 / s, d1 / s, d2 / s, d3 / s
        s = a0 + b0 + c0 + d0 + eps
        a0, b0, c0, d0 = a0 / s, b0 / s, c0 / s, d0 / s
        s = a1 + b1 + c1 + d1 + eps
        a1, b1, c1, d1 = a1 / s, b1 / s, c1 / s, d1 / s
        s = a2 + b2 + c2 + d2 + eps
        a2, b2, c2, d2 = a2 / s, b2 / s, c2 / s, d2 / s
        s = a3 + b3 + c3 + d3 + eps
        a3, b3, c3, d3 = a3 / s, b3 / s, c3 / s, d3 / s
    return [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3]


def one_token_mixes(z: list[float], iters: int, eps: float) -> list[float]:
    """`HyperConnection.pre`'s gates for one token with 4 streams, in Python floats: z (24 pre-activations)
    -> pre gates (4), post gates (4) and the Sinkhorn-normalised mixing matrix (16, row-major). As tensor ops
    this is ~30 kernel launches per mHC site, which dominate a decode step's fixed cost."""
    # sigmoid as (1 + tanh(v/2)) / 2: math.exp(-v) would overflow for v below -709
    pre = [0.5 + 0.5 * math.tanh(0.5 * v) + eps for v in z[:4]]
    post = [1.0 + math.tanh(0.5 * v) for v in z[4:8]]
    comb = []
    for r in range(4):
        row = z[8 + 4 * r: 12 + 4 * r]
        top = max(row)
        ex = [math.exp(v - top) for v in row]
        total = sum(ex)
        comb += [v / total + eps for v in ex]
    return pre + post + sinkhorn_4x4(comb, iters, eps)


def sinkhorn(comb: torch.Tensor, iters: int, eps: float) -> torch.Tensor:
    """(T, hc, hc) positive -> doubly stochastic (to eps): a column pass, then iters-1 row/column pairs."""
    comb = comb / (comb.sum(-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        comb = comb / (comb.sum(-1, keepdim=True) + eps)
        comb = comb / (comb.sum(-2, keepdim=True) + eps)
    return comb


class HyperConnection(nn.Module):
    """One mHC site: `pre` collapses the streams into the sub-layer input, `post` expands it back."""

    def __init__(self, cfg: DeepseekV4Config, prefix: str) -> None:
        super().__init__()
        hc, d = cfg.hc_mult, cfg.hidden_size
        self.hc, self.iters, self.eps, self.norm_eps = hc, cfg.hc_sinkhorn_iters, cfg.hc_eps, cfg.rms_norm_eps
        self.fn = nn.Parameter(torch.zeros((2 + hc) * hc, hc * d))
        self.base = nn.Parameter(torch.zeros((2 + hc) * hc))
        self.scale = nn.Parameter(torch.zeros(3))
        self.scale_index = torch.tensor([0] * hc + [1] * hc + [2] * hc * hc)  # which of `scale` each mix uses

    def pre(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """h (T, hc, d) -> sub-layer input (T, d), post gates (T, hc), mixing matrix (T, hc, hc)."""
        hc = self.hc
        mixes = F.linear(rms_unweighted(h.flatten(1), self.norm_eps), self.fn)  # (T, (2+hc)*hc)
        z = torch.addcmul(self.base, mixes, self.scale[self.scale_index])
        if h.shape[0] == 1 and hc == 4:
            m = torch.tensor(one_token_mixes(z[0].tolist(), self.iters, self.eps))  # (24,)
            pre, post, comb = m[None, None, :4], m[None, 4:8], m[8:].view(1, 4, 4)
            return torch.bmm(pre, h)[:, 0], post, comb
        gates = z[:, :2 * hc].sigmoid()
        pre = gates[:, :hc] + self.eps
        post = 2 * gates[:, hc:]
        comb = sinkhorn(z[:, 2 * hc:].view(-1, hc, hc).softmax(-1) + self.eps, self.iters, self.eps)
        return torch.bmm(pre[:, None, :], h)[:, 0], post, comb  # (T, d), (T, hc), (T, hc, hc)

    @staticmethod
    def post(o: torch.Tensor, h: torch.Tensor, post: torch.Tensor, comb: torch.Tensor) -> torch.Tensor:
        # h'_k = post_k * o + sum_j comb[j, k] * h_j
        mixed = torch.bmm(comb.transpose(1, 2), h)  # (T, hc, d)
        return torch.addcmul(mixed, post[:, :, None], o[:, None, :])


def collapse_streams(h: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor, norm_eps: float,
                     hc_eps: float) -> torch.Tensor:
    """The `hc_head` of the model (and of each MTP block): (T, hc, d) streams -> (T, d), a sigmoid-weighted
    sum of the streams (the final norm is applied by the caller)."""
    mixes = F.linear(rms_unweighted(h.flatten(1), norm_eps), fn)  # (T, hc)
    pre = torch.sigmoid(mixes * scale + base) + hc_eps
    return torch.bmm(pre[:, None, :], h)[:, 0]
