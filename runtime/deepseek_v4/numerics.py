"""Rounding simulations of the official DeepSeek-V4 reference (its `official` numerics), written from the
format description: FP8 e4m3 activation quantisation in blocks with power-of-two (ue8m0) scales, the FP8
round trip of the KV non-RoPE dims in blocks of 64, and the FP4 (e2m1) round trip with a Hadamard rotation
used in the indexer. Each function returns the de-quantised values in the input's dtype.
"""

from __future__ import annotations

import math

import torch

FP8_MAX = 448.0
FP8_AMAX_FLOOR = 1e-4
FP4_MAX = 6.0
FP4_AMAX_FLOOR = 6.0 * 2.0 ** -126
FP4_GRID = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def pow2_scale(amax: torch.Tensor, qmax: float) -> torch.Tensor:
    """The smallest power of two s with amax / s <= qmax (ue8m0 scale)."""
    return torch.exp2(torch.ceil(torch.log2(amax / qmax)))


def fp8_act_roundtrip(x: torch.Tensor, block: int = 128) -> torch.Tensor:
    """Quantise x to FP8 e4m3 in 1 x `block` groups along the last dim with pow-2 scales, and back."""
    shape, dtype = x.shape, x.dtype
    n = shape[-1]
    pad = (-n) % block
    xf = x.float()
    if pad:
        xf = torch.nn.functional.pad(xf, (0, pad))
    g = xf.reshape(-1, block)
    amax = g.abs().amax(-1, keepdim=True).clamp(min=FP8_AMAX_FLOOR)
    s = pow2_scale(amax, FP8_MAX)
    q = (g / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).float() * s
    q = q.reshape(*shape[:-1], n + pad)[..., :n]
    return q.to(dtype)


def kv_fp8_roundtrip(kv: torch.Tensor, rope_dim: int) -> torch.Tensor:
    """FP8 round trip of the non-RoPE dims (blocks of 64); the trailing RoPE dims are kept."""
    nope = fp8_act_roundtrip(kv[..., :-rope_dim], 64)
    return torch.cat((nope, kv[..., -rope_dim:]), dim=-1)


def e2m1_round(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest FP4 e2m1 value (ties to the even code), saturating at +-6."""
    a = x.abs().clamp(max=FP4_MAX)
    grid = FP4_GRID.to(x.device)
    d = (a[..., None] - grid).abs()
    best = d.min(-1, keepdim=True).values
    cand = d == best
    codes = torch.arange(8, device=x.device)
    # among equally near values prefer the even code (round half to even on the mantissa)
    pick = torch.where(cand & (codes % 2 == 0), codes, torch.full_like(codes, 99)).min(-1).values
    fallback = torch.where(cand, codes, torch.full_like(codes, 99)).min(-1).values
    pick = torch.where(pick == 99, fallback, pick)
    return grid[pick] * torch.sign(x)


def fp4_act_roundtrip(x: torch.Tensor, block: int = 32) -> torch.Tensor:
    """Quantise to FP4 e2m1 in 1 x `block` groups with pow-2 scales (amax floor 6 * 2^-126), and back."""
    shape, dtype = x.shape, x.dtype
    g = x.float().reshape(-1, block)
    amax = g.abs().amax(-1, keepdim=True).clamp(min=FP4_AMAX_FLOOR)
    s = pow2_scale(amax, FP4_MAX)
    return (e2m1_round((g / s).clamp(-FP4_MAX, FP4_MAX)) * s).reshape(shape).to(dtype)


def hadamard_matrix(n: int) -> torch.Tensor:
    if n & (n - 1):
        raise ValueError(f"Hadamard size must be a power of two, not {n}")
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat((torch.cat((h, h), 1), torch.cat((h, -h), 1)), 0)
    return h / math.sqrt(n)


def hadamard(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal Sylvester Hadamard rotation of the last dim."""
    h = hadamard_matrix(x.shape[-1]).to(x.device)
    return (x.float() @ h).to(x.dtype)
