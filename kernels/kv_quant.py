"""KV rows (N, D) quantised in blocks along D for the warm/cold cache tiers, and back.

- fp8: e4m3 codes in blocks of 64 with power-of-two scales (the reference's KV round trip,
  `numerics.fp8_act_roundtrip(x, 64)`);
- int8: symmetric, scale amax/127 per block of 64 (`quantize_rows_int8` on each block);
- int4: asymmetric groups of 32, x ~ (q - 8) * scale + zero, codes 0..15 two per byte, element 2i in the low
  nibble (`quantize_groups_int4`'s rule).
tests/kernels checks that the references round-trip exactly as those runtime functions do (kernels/ does not
import the runtime, which imports it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._triton import check, check_tensor, next_pow2, tl, triton

KV_FORMATS = ("fp8", "int8", "int4")
BLOCK = {"fp8": 64, "int8": 64, "int4": 32}
FP8_MAX, FP8_AMAX_FLOOR = 448.0, 1e-4
FLOATS = (torch.float32, torch.float16, torch.bfloat16)


@dataclass(slots=True)
class QuantizedKV:
    fmt: str
    codes: torch.Tensor  # (N, D) uint8 fp8 bits | (N, D) int8 | (N, D/2) uint8 packed int4
    scale: torch.Tensor  # (N, D/block) float32
    zero: torch.Tensor | None  # (N, D/block) float32, int4 only
    dim: int

    @property
    def block(self) -> int:
        return BLOCK[self.fmt]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.codes, self.scale, self.zero) if t is not None)


def _check_rows(x: torch.Tensor, fmt: str) -> None:
    check(fmt in KV_FORMATS, f"KV format must be one of {KV_FORMATS}, not {fmt!r}")
    check(x.dim() == 2 and x.shape[1] % BLOCK[fmt] == 0, f"{fmt} KV rows come in blocks of {BLOCK[fmt]}: {tuple(x.shape)}")


def quantize_kv_ref(x: torch.Tensor, fmt: str) -> QuantizedKV:
    _check_rows(x, fmt)
    N, D = x.shape
    b = BLOCK[fmt]
    g = x.float().reshape(-1, b)
    if fmt == "fp8":  # the smallest power of two s with amax / s <= 448
        s = torch.exp2(torch.ceil(torch.log2(g.abs().amax(-1, keepdim=True).clamp(min=FP8_AMAX_FLOOR) / FP8_MAX)))
        codes = (g / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).view(torch.uint8)
        return QuantizedKV(fmt, codes.reshape(N, D), s.reshape(N, D // b), None, D)
    if fmt == "int8":
        s = g.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        q = torch.round(g / s[:, None]).clamp_(-127, 127).to(torch.int8)
        return QuantizedKV(fmt, q.reshape(N, D), s.reshape(N, D // b), None, D)
    lo, hi = g.amin(dim=1), g.amax(dim=1)
    s = ((hi - lo) / 15.0).clamp(min=1e-12)
    q = torch.round((g - lo[:, None]) / s[:, None]).clamp_(0, 15).to(torch.uint8).view(N, D // 2, 2)
    packed = q[..., 0] | (q[..., 1] << 4)
    zero = lo + 8.0 * s
    return QuantizedKV(fmt, packed.contiguous(), s.reshape(N, D // b), zero.reshape(N, D // b), D)


def dequantize_kv_ref(kv: QuantizedKV, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    N, D, b = kv.codes.shape[0], kv.dim, kv.block
    scale = kv.scale.repeat_interleave(b, dim=1)
    if kv.fmt == "fp8":
        return (kv.codes.view(torch.float8_e4m3fn).float() * scale).to(dtype)
    if kv.fmt == "int8":
        return (kv.codes.float() * scale).to(dtype)
    q = torch.stack((kv.codes & 0xF, kv.codes >> 4), dim=-1).reshape(N, D).float()
    return ((q - 8.0) * scale + kv.zero.repeat_interleave(b, dim=1)).to(dtype)


@triton.jit
def _rne(v):
    """Round half to even, as torch.round."""
    r = tl.floor(v + 0.5)
    tie = (r - v) == 0.5
    odd = (r - 2.0 * tl.floor(r * 0.5)) == 1.0
    return tl.where(tie & odd, r - 1.0, r)


@triton.jit
def _pow2_at_least(r):
    """The smallest power of two >= r > 0 (normal r), from the float's bits: exact, unlike exp2(ceil(log2 r))."""
    bits = r.to(tl.int32, bitcast=True)
    e = ((bits >> 23) & 0xFF) - 127 + tl.where((bits & 0x7FFFFF) != 0, 1, 0)
    return tl.exp2(e.to(tl.float32))


@triton.jit
def _e4m3_bits(v):
    """|v| <= 448 -> its FP8 e4m3fn byte, rounding to nearest even (the interpreter's own cast carries a
    mantissa overflow wrongly, so the rounding is spelled out; it is exact on the GPU as well)."""
    bits = v.to(tl.int32, bitcast=True)
    a = tl.abs(v)
    e = tl.maximum(((a.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127, -6)  # subnormals share 2^-6's quantum
    m = _rne(a / tl.exp2((e - 3).to(tl.float32)))  # 8..16 (0..8 below 2^-6); 16 carries into the exponent
    code = tl.minimum((e + 6) * 8 + m.to(tl.int32), 126)
    return (code | tl.where(bits < 0, 0x80, 0)).to(tl.uint8)


@triton.jit
def _quant_kernel(x_ptr, codes_ptr, scale_ptr, zero_ptr, D, FMT: tl.constexpr, B: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    blk = tl.program_id(1)
    nb = D // B
    if FMT == 2:  # int4: even and odd elements of the block, one byte each pair
        half = tl.arange(0, B // 2)
        base = x_ptr + row * D + blk * B
        ev = tl.load(base + 2 * half).to(tl.float32)
        od = tl.load(base + 2 * half + 1).to(tl.float32)
        lo = tl.minimum(tl.min(ev, axis=0), tl.min(od, axis=0))
        hi = tl.maximum(tl.max(ev, axis=0), tl.max(od, axis=0))
        s = tl.maximum((hi - lo) / 15.0, 1e-12)
        qe = tl.minimum(tl.maximum(_rne((ev - lo) / s), 0.0), 15.0).to(tl.uint8)
        qo = tl.minimum(tl.maximum(_rne((od - lo) / s), 0.0), 15.0).to(tl.uint8)
        tl.store(codes_ptr + row * (D // 2) + blk * (B // 2) + half, qe | (qo << 4))
        tl.store(zero_ptr + row * nb + blk, lo + 8.0 * s)
    else:
        offs = tl.arange(0, B)
        x = tl.load(x_ptr + row * D + blk * B + offs).to(tl.float32)
        amax = tl.max(tl.abs(x), axis=0)
        if FMT == 0:  # fp8 e4m3, power-of-two scale
            s = _pow2_at_least(tl.maximum(amax, 1e-4) / 448.0)
            q = _e4m3_bits(tl.minimum(tl.maximum(x / s, -448.0), 448.0))
        else:  # int8
            s = tl.maximum(amax, 1e-12) / 127.0
            q = tl.minimum(tl.maximum(_rne(x / s), -127.0), 127.0).to(tl.int8)
        tl.store(codes_ptr + row * D + blk * B + offs, q)
    tl.store(scale_ptr + row * nb + blk, s)


@triton.jit
def dequant_tile(codes_ptr, scale_ptr, zero_ptr, rows, offs_d, mask, D, FMT: tl.constexpr, B: tl.constexpr):
    """Rows `rows` (R,) x channels `offs_d` (C,) of a quantised KV store -> float32 (R, C); also used by the
    quantised-KV attention."""
    nb = D // B
    sidx = rows[:, None].to(tl.int64) * nb + (offs_d // B)[None, :]
    s = tl.load(scale_ptr + sidx, mask=mask, other=0.0)
    if FMT == 2:
        byte = tl.load(codes_ptr + rows[:, None].to(tl.int64) * (D // 2) + (offs_d // 2)[None, :], mask=mask, other=0)
        q = tl.where((offs_d % 2 == 0)[None, :], byte & 0xF, byte >> 4).to(tl.float32)
        return (q - 8.0) * s + tl.load(zero_ptr + sidx, mask=mask, other=0.0)
    c = tl.load(codes_ptr + rows[:, None].to(tl.int64) * D + offs_d[None, :], mask=mask, other=0)
    if FMT == 0:
        return c.to(tl.float8e4nv, bitcast=True).to(tl.float32) * s
    return c.to(tl.float32) * s


@triton.jit
def _dequant_kernel(codes_ptr, scale_ptr, zero_ptr, out_ptr, N, D, FMT: tl.constexpr, B: tl.constexpr,
                    BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = (rows[:, None] < N) & (offs_d[None, :] < D)
    v = dequant_tile(codes_ptr, scale_ptr, zero_ptr, rows, offs_d, mask, D, FMT, B)
    tl.store(out_ptr + rows[:, None].to(tl.int64) * D + offs_d[None, :], v.to(out_ptr.dtype.element_ty), mask=mask)


FMT_CODE = {"fp8": 0, "int8": 1, "int4": 2}


def check_quantized(kv: QuantizedKV, device: torch.device) -> None:
    check(kv.fmt in KV_FORMATS, f"KV format must be one of {KV_FORMATS}, not {kv.fmt!r}")
    N, D, b = kv.codes.shape[0], kv.dim, kv.block
    width = D // 2 if kv.fmt == "int4" else D
    check_tensor("codes", kv.codes, dtypes=(torch.int8,) if kv.fmt == "int8" else (torch.uint8,), dim=2)
    check(kv.codes.shape == (N, width), f"codes {tuple(kv.codes.shape)} must be {(N, width)}")
    check_tensor("scale", kv.scale, dtypes=(torch.float32,), dim=2)
    check(kv.scale.shape == (N, D // b), f"scale {tuple(kv.scale.shape)} must be {(N, D // b)}")
    check((kv.zero is not None) == (kv.fmt == "int4"), "int4 (and only int4) has zero points")
    if kv.zero is not None:
        check_tensor("zero", kv.zero, dtypes=(torch.float32,), dim=2)
        check(kv.zero.shape == kv.scale.shape, "zero must have the scale's shape")
    check(kv.codes.device == kv.scale.device == device, f"the quantised KV must be on {device}")


def quantize_kv(x: torch.Tensor, fmt: str, *, out: QuantizedKV | None = None) -> QuantizedKV:
    _check_rows(x, fmt)
    check_tensor("x", x, dtypes=FLOATS, dim=2)
    N, D = x.shape
    b = BLOCK[fmt]
    if out is None:
        width = D // 2 if fmt == "int4" else D
        codes = torch.empty(N, width, dtype=torch.int8 if fmt == "int8" else torch.uint8, device=x.device)
        scale = torch.empty(N, D // b, dtype=torch.float32, device=x.device)
        out = QuantizedKV(fmt, codes, scale, torch.empty_like(scale) if fmt == "int4" else None, D)
    check(out.fmt == fmt and out.dim == D, f"out holds {out.fmt} rows of {out.dim}, not {fmt} rows of {D}")
    check_quantized(out, x.device)
    check(out.codes.shape[0] == N, f"out holds {out.codes.shape[0]} rows, x {N}")
    if N:
        _quant_kernel[(N, D // b)](x, out.codes, out.scale, out.zero if out.zero is not None else out.scale, D,
                                   FMT=FMT_CODE[fmt], B=b)
    return out


def dequantize_kv(kv: QuantizedKV, dtype: torch.dtype = torch.float32, *, out: torch.Tensor | None = None) -> torch.Tensor:
    check_quantized(kv, kv.codes.device)
    N, D = kv.codes.shape[0], kv.dim
    if out is None:
        out = torch.empty(N, D, dtype=dtype, device=kv.codes.device)
    check_tensor("out", out, dtypes=FLOATS, dim=2)
    check(out.shape == (N, D), f"out {tuple(out.shape)} must be {(N, D)}")
    block_r, block_d = 16, min(128, next_pow2(D))
    if N:
        _dequant_kernel[(triton.cdiv(N, block_r), triton.cdiv(D, block_d))](
            kv.codes, kv.scale, kv.zero if kv.zero is not None else kv.scale, out, N, D, FMT=FMT_CODE[kv.fmt],
            B=kv.block, BLOCK_R=block_r, BLOCK_D=block_d)
    return out
