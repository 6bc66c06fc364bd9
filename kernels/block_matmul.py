"""Matmuls that read the V4 checkpoint's quantised weights directly, dequantising tile by tile in registers:

- FP8 e4m3 weights (N, K) with 128 x 128 block scales (ue8m0 bytes: 2^(b - 127), or float32 in Base
  checkpoints): the dense projections;
- FP4 e2m1 weights packed two per byte (N, K/2; element 2i in the low nibble) with 1 x 32 ue8m0 scales:
  the routed experts.

y = x W^T in float32. Grouped (routed experts): rows of x sorted by expert, expert e owning rows
offsets[e]:offsets[e+1], each multiplied by its own W[e] (E, N, K) in one launch.
The formats are the ones `runtime/deepseek_v4/checkpoint.py` de-quantises at load (tests/kernels checks the
references against it; kernels/ does not import the runtime, which imports it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._triton import check, check_tensor, next_pow2, tl, triton

ACTS = (torch.float32, torch.float16, torch.bfloat16)
FP8_BLOCK = 128
FP4_BLOCK = 32


E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def _bytes(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.uint8) if t.dtype in (torch.float8_e4m3fn, torch.float8_e8m0fnu, torch.int8) else t


def block_scales(scale: torch.Tensor) -> torch.Tensor:
    """ue8m0 bytes -> 2^(b - 127); float32 scales (Base checkpoints) as they are."""
    scale = _bytes(scale)
    return torch.exp2(scale.float() - 127.0) if scale.dtype == torch.uint8 else scale.float()


def dequant_fp8_ref(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """W[i, j] = e4m3(w[i, j]) * scale[i // 128, j // 128]."""
    N, K = w.shape
    s = block_scales(scale).repeat_interleave(FP8_BLOCK, 0)[:N].repeat_interleave(FP8_BLOCK, 1)[:, :K]
    return _bytes(w).view(torch.float8_e4m3fn).float() * s


def dequant_fp4_ref(w: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """W[o, k] = e2m1(nibble k of row o; element 2i low) * 2^(scale[o, k // 32] - 127)."""
    b = _bytes(w).long()
    codes = torch.stack((b & 0xF, b >> 4), dim=-1).flatten(-2)
    grid = torch.tensor(E2M1 + tuple(-v for v in E2M1), device=w.device)
    return grid[codes] * block_scales(scale).repeat_interleave(FP4_BLOCK, 1)[:, : codes.shape[1]]


def block_fp8_linear_ref(x, w, scale, *, out=None) -> torch.Tensor:
    """x (T, K), w (N, K) fp8 (float8_e4m3fn or its bytes), scale (ceil(N/128), ceil(K/128)) -> (T, N) fp32."""
    y = F.linear(x.float(), dequant_fp8_ref(w, scale))
    return y if out is None else out.copy_(y)


def fp4_linear_ref(x, w, scale, *, out=None) -> torch.Tensor:
    """x (T, K), w (N, K/2) packed e2m1, scale (N, K/32) ue8m0 -> (T, N) fp32."""
    y = F.linear(x.float(), dequant_fp4_ref(w, scale))
    return y if out is None else out.copy_(y)


def grouped_linear_ref(x, w, scale, offsets, fmt: str, *, out=None) -> torch.Tensor:
    """x (T, K) rows grouped by expert, w (E, ...) and scale (E, ...) per expert, offsets (E+1,) -> (T, N) fp32."""
    one = block_fp8_linear_ref if fmt == "fp8" else fp4_linear_ref
    N = w.shape[1]
    y = torch.zeros(x.shape[0], N, dtype=torch.float32, device=x.device)
    bounds = offsets.tolist()
    for e in range(w.shape[0]):
        if bounds[e + 1] > bounds[e]:
            y[bounds[e]:bounds[e + 1]] = one(x[bounds[e]:bounds[e + 1]], w[e], scale[e])
    return y if out is None else out.copy_(y)


@triton.jit
def _e2m1(code):
    """4-bit e2m1 codes -> float32: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives."""
    mag = code & 7
    e = (mag >> 1).to(tl.float32)
    m = (mag & 1).to(tl.float32)
    v = tl.where(e == 0, 0.5 * m, (1.0 + 0.5 * m) * tl.exp2(e - 1.0))
    return tl.where(code >= 8, -v, v)


@triton.jit
def _matmul_kernel(x_ptr, w_ptr, s_ptr, off_ptr, y_ptr, N, K, SN, SK, FP4: tl.constexpr, E8M0: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PREC: tl.constexpr):
    e = tl.program_id(2)
    row0 = tl.load(off_ptr + e)
    row1 = tl.load(off_ptr + e + 1)
    rows = row0 + tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < row1
    cmask = cols < N
    offs_k = tl.arange(0, BLOCK_K)
    w_base = w_ptr + e.to(tl.int64) * N * (K // 2 if FP4 else K)
    s_base = s_ptr + e.to(tl.int64) * SN * SK
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + offs_k
        kmask = ks < K
        a = tl.load(x_ptr + rows[:, None].to(tl.int64) * K + ks[None, :], mask=rmask[:, None] & kmask[None, :], other=0.0)
        wmask = kmask[:, None] & cmask[None, :]
        if FP4:
            b = tl.load(w_base + cols[None, :].to(tl.int64) * (K // 2) + (ks // 2)[:, None], mask=wmask, other=0)
            code = tl.where((ks % 2 == 0)[:, None], b & 0xF, b >> 4)
            s = tl.load(s_base + cols[None, :].to(tl.int64) * SK + (ks // 32)[:, None], mask=wmask, other=127)
            w = _e2m1(code) * tl.exp2(s.to(tl.float32) - 127.0)  # (BLOCK_K, BLOCK_N)
        else:
            b = tl.load(w_base + cols[None, :].to(tl.int64) * K + ks[:, None], mask=wmask, other=0)
            s = tl.load(s_base + (cols // 128) * SK + k0 // 128, mask=cmask, other=0)  # BLOCK_K divides 128
            if E8M0:
                s = tl.exp2(s.to(tl.float32) - 127.0)
            w = b.to(tl.float8e4nv, bitcast=True).to(tl.float32) * s[None, :]
        acc += tl.dot(a, w.to(a.dtype), input_precision=PREC)
    tl.store(y_ptr + rows[:, None].to(tl.int64) * N + cols[None, :], acc, mask=rmask[:, None] & cmask[None, :])


def _launch(x, w, scale, offsets, fp4: bool, max_rows: int, out):
    check_tensor("x", x, dtypes=ACTS, dim=2)
    E, N = w.shape[0], w.shape[1]
    K = x.shape[1]
    check(w.shape[2] * (2 if fp4 else 1) == K, f"weights {tuple(w.shape)} do not fit x with {K} columns")
    if fp4:
        check(K % FP4_BLOCK == 0, f"FP4 weights come in whole blocks of {FP4_BLOCK} columns, not {K}")
        check(scale.dtype == torch.uint8 and scale.shape == (E, N, K // FP4_BLOCK),
              f"FP4 scales must be ue8m0 bytes {(E, N, K // FP4_BLOCK)}, not {scale.dtype} {tuple(scale.shape)}")
    else:
        want = (E, triton.cdiv(N, FP8_BLOCK), triton.cdiv(K, FP8_BLOCK))
        check(scale.dtype in (torch.uint8, torch.float32) and scale.shape == want,
              f"FP8 scales must be ue8m0 bytes or float32 {want}, not {scale.dtype} {tuple(scale.shape)}")
    check_tensor("w", w, dtypes=(torch.uint8,), dim=3)
    check_tensor("scale", scale, dtypes=(torch.uint8, torch.float32), dim=3)
    check(x.device == w.device == scale.device == offsets.device, "x, w, scale and offsets on one device")
    if out is None:
        out = torch.empty(x.shape[0], N, dtype=torch.float32, device=x.device)
    check_tensor("out", out, dtypes=(torch.float32,), dim=2)
    check(out.shape == (x.shape[0], N), f"out {tuple(out.shape)} must be {(x.shape[0], N)}")
    block_m = max(16, min(64, next_pow2(max_rows)))
    block_n, block_k = 64, 64
    if max_rows and N:
        grid = (triton.cdiv(max_rows, block_m), triton.cdiv(N, block_n), E)
        _matmul_kernel[grid](x, w, scale, offsets, out, N, K, scale.shape[1], scale.shape[2], FP4=fp4,
                             E8M0=scale.dtype == torch.uint8, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k,
                             PREC="ieee" if x.dtype == torch.float32 else "tf32")
    return out


def block_fp8_linear(x, w, scale, *, out=None) -> torch.Tensor:
    offsets = torch.tensor([0, x.shape[0]], dtype=torch.int32, device=x.device)
    return _launch(x, _bytes(w)[None], _bytes(scale)[None] if scale.dtype != torch.float32 else scale[None], offsets,
                   False, x.shape[0], out)


def fp4_linear(x, w, scale, *, out=None) -> torch.Tensor:
    offsets = torch.tensor([0, x.shape[0]], dtype=torch.int32, device=x.device)
    return _launch(x, _bytes(w)[None], _bytes(scale)[None], offsets, True, x.shape[0], out)


def grouped_linear(x, w, scale, offsets, fmt: str, *, out=None) -> torch.Tensor:
    """The routed experts' grouped GEMM; `offsets` (E+1,) int32 on x's device."""
    check(fmt in ("fp8", "fp4"), f"format must be fp8 or fp4, not {fmt!r}")
    check_tensor("offsets", offsets, dtypes=(torch.int32,), dim=1)
    check(offsets.shape[0] == w.shape[0] + 1, f"offsets need {w.shape[0] + 1} entries, not {offsets.shape[0]}")
    max_rows = int((offsets[1:] - offsets[:-1]).max()) if w.shape[0] else 0  # one host sync per launch
    scale = scale if scale.dtype == torch.float32 else _bytes(scale)
    return _launch(x, _bytes(w), scale, offsets, fmt == "fp4", max_rows, out)
