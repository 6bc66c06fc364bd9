"""Rotary position embedding with the scaling variants of the llama family (linear, llama3, yarn).

Both pair layouts are supported without permuting weights: HF checkpoints rotate (i, i + D/2), GGUF
llama files rotate (2i, 2i + 1). The partner of each element is found by a roll (HF) or a pair flip
(GGUF) and the sign is folded into the sin table, so the rotation is `x * cos + partner(x) * sin_signed`:
three elementwise ops for any number of heads, with q and k rotated together (matmuls cost 5x more).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import RopeScaling


def inverse_frequencies(head_dim: int, theta: float, scaling: RopeScaling) -> tuple[torch.Tensor, float]:
    """(inv_freq (D/2,), attention scale applied to cos/sin).

    Computed in float32 exactly as transformers does: at position 2000 an angle differs from the float64 one
    by ~1e-4 rad, which moves logits by ~1e-3, and the fp32 mode exists to match the reference.
    """
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    inv_freq = 1.0 / theta**exponents  # (D/2,) float32
    kind, factor = scaling.kind, scaling.factor
    if kind == "linear":
        return inv_freq / factor, 1.0
    if kind == "llama3":
        old = float(scaling.original_max_position or 8192)
        low_wavelen, high_wavelen = old / scaling.low_freq_factor, old / scaling.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
        return torch.where(medium, smoothed, scaled), 1.0
    if kind == "yarn":
        old = float(scaling.original_max_position or 4096)
        mscale = scaling.attention_factor or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)

        def correction_dim(rotations: float) -> float:
            return head_dim * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(theta))

        low = max(math.floor(correction_dim(scaling.beta_fast)), 0)
        high = min(math.ceil(correction_dim(scaling.beta_slow)), head_dim - 1)
        ramp = (torch.arange(head_dim // 2, dtype=torch.float32) - low) / max(high - low, 1e-3)
        extrapolate = 1.0 - ramp.clamp(0, 1)  # 1: keep the original frequency
        return inv_freq / factor * (1 - extrapolate) + inv_freq * extrapolate, mscale
    return inv_freq, 1.0


class RotaryEmbedding(nn.Module):
    def __init__(
        self,
        head_dim: int,
        max_position: int,
        theta: float,
        scaling: RopeScaling,
        *,
        interleaved: bool,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.head_dim, self.max_position, self.theta, self.scaling = head_dim, max_position, theta, scaling
        self.interleaved, self.dtype = interleaved, dtype
        # rotated[j] = x[j] cos - x[partner] sin for the first of a pair, + for the second
        first = torch.arange(head_dim) % 2 == 0 if interleaved else torch.arange(head_dim) < head_dim // 2
        self.sign = torch.where(first, -1.0, 1.0)  # (D,)
        self.set_freq_factors(None)

    def set_freq_factors(self, factors: torch.Tensor | None) -> None:
        """GGUF llama3-style files carry per-frequency divisors (`rope_freqs.weight`) instead of scaling keys."""
        inv_freq, mscale = inverse_frequencies(self.head_dim, self.theta, self.scaling)
        if factors is not None:
            inv_freq = inv_freq / factors.float()
        angles = torch.outer(torch.arange(self.max_position, dtype=torch.float32), inv_freq.float())  # (P, D/2)
        if self.interleaved:
            angles = angles.repeat_interleave(2, dim=-1)  # (P, D)
        else:
            angles = torch.cat([angles, angles], dim=-1)  # (P, D)
        self.register_buffer("cos", (angles.cos() * mscale).to(self.dtype), persistent=False)
        self.register_buffer("sin", (angles.sin() * mscale * self.sign).to(self.dtype), persistent=False)

    def forward(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """x: (T, H, D) for positions start..start+T-1; returns the rotated copy."""
        T = x.shape[0]
        cos = self.cos[start : start + T].unsqueeze(1)  # (T, 1, D)
        sin = self.sin[start : start + T].unsqueeze(1)  # (T, 1, D)
        if self.interleaved:
            partner = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # (T, H, D): x[2i+1], x[2i]
        else:
            partner = x.roll(self.head_dim // 2, dims=-1)  # (T, H, D): x[i+D/2], x[i]
        return torch.addcmul(x * cos, partner, sin)  # (T, H, D)
