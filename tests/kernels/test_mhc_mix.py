"""One-token mHC pre: the reference against the model's HyperConnection (its one-token scalar path and its
tensor path), the fused kernel against the reference."""

from __future__ import annotations

import pytest
import torch

from dsv4.runtime.deepseek_v4.mhc import HyperConnection
from tests.runtime.v4.tiny import tiny_config

from .conftest import interpreter, needs_triton, poisoned
from dsv4.kernels import mhc_mix


def site(gen: torch.Generator, d: int = 32) -> HyperConnection:
    cfg = tiny_config(d=d)
    hcn = HyperConnection(cfg, "attn")
    with torch.no_grad():
        hcn.fn.copy_(torch.randn(hcn.fn.shape, generator=gen) * 0.3)
        hcn.base.copy_(torch.randn(hcn.base.shape, generator=gen))
        hcn.scale.copy_(0.5 + 0.1 * torch.randn(3, generator=gen))
    return hcn


def args_of(hcn: HyperConnection):
    return hcn.fn.detach(), hcn.base.detach(), hcn.scale.detach(), hcn.norm_eps, hcn.eps, hcn.iters


def test_reference_is_the_model_mhc(gen: torch.Generator) -> None:
    hcn = site(gen)
    h = torch.randn(1, 4, 32, generator=gen)
    got = mhc_mix.mhc_pre_one_token_ref(h, *args_of(hcn))
    with torch.no_grad():
        one = hcn.pre(h)  # the scalar (float64) one-token path
        many = hcn.pre(torch.cat((h, torch.randn(2, 4, 32, generator=gen))))  # the tensor path, token 0
    for g, w in zip(got, one):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    for g, w in zip(got, many):
        torch.testing.assert_close(g, w[:1], rtol=1e-5, atol=1e-6)  # fp32, other op order


@needs_triton
@interpreter
@pytest.mark.parametrize("d", [32, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_kernel_matches_reference(d: int, dtype, gen: torch.Generator) -> None:
    hcn = site(gen, d)
    h = torch.randn(1, 4, d, generator=gen).to(dtype)
    out = (poisoned((1, d), dtype), poisoned((1, 4)), poisoned((1, 4, 4)))
    got = mhc_mix.mhc_pre_one_token(h, *args_of(hcn), out=out)
    want = mhc_mix.mhc_pre_one_token_ref(h, *args_of(hcn))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-3, atol=2e-3)
    for g, w, o in zip(got, want, out):
        assert g.data_ptr() == o.data_ptr()
        torch.testing.assert_close(g.float(), w.float(), **tol)


@needs_triton
def test_launcher_refuses_bad_inputs(gen) -> None:
    hcn = site(gen)
    fn, base, scale, *rest = args_of(hcn)
    with pytest.raises(ValueError, match="one token"):
        mhc_mix.mhc_pre_one_token(torch.randn(2, 4, 32), fn, base, scale, *rest)
    with pytest.raises(ValueError, match="fn"):
        mhc_mix.mhc_pre_one_token(torch.randn(1, 4, 16), fn, base, scale, *rest)
