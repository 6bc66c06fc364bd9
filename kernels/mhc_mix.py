"""One token's mHC `pre` in one kernel: the RMS-normed streams through the mixing projection, the gates, the
Sinkhorn-normalised mixing matrix and the collapsed sub-layer input.

    x = rms(h.flatten()); z = base + (fn x) * scale[kind]          kinds: hc pre, hc post, hc*hc comb
    pre = sigmoid(z_pre) + eps;  post = 2 sigmoid(z_post);  comb = sinkhorn(softmax_rows(z_comb) + eps)
    y = sum_j pre[j] h[j]

A decode step runs this at every mHC site (two per layer); in torch it is ~30 tiny launches (or, on the CPU,
a host round trip through Python floats). One program does all of it: the (2+hc)hc x hc*d product streams
fn once, the gates and Sinkhorn iterations are a few registers, then one pass over h makes y.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._triton import check, check_tensor, next_pow2, tl, triton


def mhc_pre_one_token_ref(h: torch.Tensor, fn: torch.Tensor, base: torch.Tensor, scale: torch.Tensor, norm_eps: float,
                          hc_eps: float, iters: int, *, out=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """h (1, hc, d) -> y (1, d), post (1, hc), comb (1, hc, hc): `HyperConnection.pre`'s tensor form."""
    hc = h.shape[1]
    kinds = torch.tensor([0] * hc + [1] * hc + [2] * hc * hc, device=h.device)
    hf = h.float()
    mixes = F.linear(F.rms_norm(hf.flatten(1), (hf.shape[1] * hf.shape[2],), eps=norm_eps), fn.float())
    z = torch.addcmul(base.float(), mixes, scale.float()[kinds])
    gates = z[:, :2 * hc].sigmoid()
    pre = gates[:, :hc] + hc_eps
    post = 2 * gates[:, hc:]
    comb = z[:, 2 * hc:].view(-1, hc, hc).softmax(-1) + hc_eps
    comb = comb / (comb.sum(-2, keepdim=True) + hc_eps)  # a column pass, then row/column pairs
    for _ in range(iters - 1):
        comb = comb / (comb.sum(-1, keepdim=True) + hc_eps)
        comb = comb / (comb.sum(-2, keepdim=True) + hc_eps)
    result = torch.bmm(pre[:, None, :], hf)[:, 0].to(h.dtype), post, comb
    if out is not None:
        for dst, src in zip(out, result):
            dst.copy_(src)
    return result


@triton.jit
def _mhc_kernel(h_ptr, fn_ptr, base_ptr, scale_ptr, y_ptr, post_ptr, comb_ptr, D, norm_eps, hc_eps, iters,
                HC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    K = HC * D
    r = tl.arange(0, HC)
    offs_k = tl.arange(0, BLOCK_K)
    ss = tl.zeros((BLOCK_K,), tl.float32)
    acc_pre = tl.zeros((HC, BLOCK_K), tl.float32)
    acc_post = tl.zeros((HC, BLOCK_K), tl.float32)
    acc_comb = tl.zeros((HC, HC, BLOCK_K), tl.float32)
    comb_rows = 2 * HC + r[:, None, None] * HC + r[None, :, None]  # row of fn for comb[i, j]
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + offs_k
        km = ks < K
        x = tl.load(h_ptr + ks, mask=km, other=0.0).to(tl.float32)
        ss += x * x
        acc_pre += tl.load(fn_ptr + r[:, None].to(tl.int64) * K + ks[None, :], mask=km[None, :], other=0.0) * x[None, :]
        acc_post += tl.load(fn_ptr + (HC + r[:, None]).to(tl.int64) * K + ks[None, :], mask=km[None, :], other=0.0) * x[None, :]
        acc_comb += tl.load(fn_ptr + comb_rows.to(tl.int64) * K + ks[None, None, :], mask=km[None, None, :],
                            other=0.0) * x[None, None, :]
    inv_rms = 1.0 / tl.sqrt(tl.sum(ss, axis=0) / K + norm_eps)
    s_pre = tl.load(scale_ptr)
    s_post = tl.load(scale_ptr + 1)
    s_comb = tl.load(scale_ptr + 2)
    z_pre = tl.load(base_ptr + r) + tl.sum(acc_pre, axis=1) * inv_rms * s_pre
    z_post = tl.load(base_ptr + HC + r) + tl.sum(acc_post, axis=1) * inv_rms * s_post
    z_comb = tl.load(base_ptr + 2 * HC + r[:, None] * HC + r[None, :]) + tl.sum(acc_comb, axis=2) * inv_rms * s_comb
    pre = 1.0 / (1.0 + tl.exp(-z_pre)) + hc_eps
    post = 2.0 / (1.0 + tl.exp(-z_post))
    e = tl.exp(z_comb - tl.max(z_comb, axis=1)[:, None])
    comb = e / tl.sum(e, axis=1)[:, None] + hc_eps
    comb = comb / (tl.sum(comb, axis=0)[None, :] + hc_eps)  # a column pass, then row/column pairs
    for _ in range(iters - 1):
        comb = comb / (tl.sum(comb, axis=1)[:, None] + hc_eps)
        comb = comb / (tl.sum(comb, axis=0)[None, :] + hc_eps)
    tl.store(post_ptr + r, post)
    tl.store(comb_ptr + r[:, None] * HC + r[None, :], comb)
    offs_d = tl.arange(0, BLOCK_D)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + offs_d
        t = tl.load(h_ptr + r[:, None] * D + ds[None, :], mask=ds[None, :] < D, other=0.0).to(tl.float32)
        tl.store(y_ptr + ds, tl.sum(t * pre[:, None], axis=0).to(y_ptr.dtype.element_ty), mask=ds < D)


def mhc_pre_one_token(h, fn, base, scale, norm_eps: float, hc_eps: float, iters: int, *, out=None):
    """The kernel; `out` = (y, post, comb) buffers to write (else new ones)."""
    check_tensor("h", h, dtypes=(torch.float32, torch.float16, torch.bfloat16), dim=3)
    _, hc, d = h.shape
    check(h.shape[0] == 1, f"one token, not {h.shape[0]}")
    check(hc & (hc - 1) == 0, f"the kernel needs a power-of-two number of streams, not {hc}")
    check(iters >= 1, f"Sinkhorn needs at least one iteration, not {iters}")
    for name, t, shape in (("fn", fn, ((2 + hc) * hc, hc * d)), ("base", base, ((2 + hc) * hc,)), ("scale", scale, (3,))):
        check_tensor(name, t, dtypes=(torch.float32,), dim=len(shape))
        check(tuple(t.shape) == shape, f"{name} {tuple(t.shape)} must be {shape}")
        check(t.device == h.device, f"{name} must be on {h.device}")
    if out is None:
        out = (torch.empty(1, d, dtype=h.dtype, device=h.device), torch.empty(1, hc, dtype=torch.float32, device=h.device),
               torch.empty(1, hc, hc, dtype=torch.float32, device=h.device))
    y, post, comb = out
    for name, t, shape, dtype in (("y", y, (1, d), h.dtype), ("post", post, (1, hc), torch.float32),
                                  ("comb", comb, (1, hc, hc), torch.float32)):
        check_tensor(name, t, dtypes=(dtype,), dim=len(shape))
        check(tuple(t.shape) == shape, f"{name} {tuple(t.shape)} must be {shape}")
    _mhc_kernel[(1,)](h, fn, base, scale, y, post, comb, d, float(norm_eps), float(hc_eps), int(iters), HC=hc,
                      BLOCK_K=min(256, next_pow2(hc * d)), BLOCK_D=min(512, next_pow2(d)))
    return y, post, comb
