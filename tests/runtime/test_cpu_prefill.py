"""The CPU prefill attention kernel (runtime/layers/cpu_prefill.c) against fp32 causal attention over the cache,
and the engine's prefill with and without it."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from dsv4.runtime.layers import cpu_decode  # noqa: E402


def reference(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, start: int, dtype: torch.dtype) -> torch.Tensor:
    """SDPA with an explicit (T, S) causal mask over cache positions [0, start + T): (T, H*D)."""
    T, heads, head_dim = q.shape
    end = start + T
    mask = torch.arange(end).unsqueeze(0) <= torch.arange(start, end).unsqueeze(1)
    out = F.scaled_dot_product_attention(q.transpose(0, 1).unsqueeze(0).to(dtype), k_cache[:, :end].unsqueeze(0).to(dtype),
                                         v_cache[:, :end].unsqueeze(0).to(dtype), attn_mask=mask, enable_gqa=True)
    return out[0].transpose(0, 1).reshape(T, heads * head_dim)


@pytest.mark.parametrize(("hkv", "group", "head_dim"), [(3, 3, 64), (2, 7, 64), (4, 2, 128), (1, 1, 64)])
@pytest.mark.parametrize(("start", "length"), [(0, 2), (0, 77), (0, 512), (31, 33), (500, 13), (1024, 300), (1999, 1)])
def test_kernel_matches_fp32_causal_attention(kernel, hkv, group, head_dim, start, length):
    gen = torch.Generator().manual_seed(start * 7 + length + head_dim + group)
    capacity = start + length + 40
    # one layer of a (layers, 2, Hkv, capacity, D) block, as the engine's cache lays it out
    block = torch.randn(2, 2, hkv, capacity, head_dim, generator=gen).bfloat16()
    k_cache, v_cache = block[1, 0], block[1, 1]
    k_cache[:, start + length :] = float("nan")  # past the chunk: must never be read
    v_cache[:, start + length :] = float("nan")
    heads = hkv * group
    # a slice of a merged (T, H + 2 Hkv, D) projection, as the model passes it: heads contiguous, tokens strided
    qkv = (torch.randn(length, heads + 2 * hkv, head_dim, generator=gen) * 3).bfloat16()
    q = qkv[:, :heads]
    got = kernel.prefill_attend(q, k_cache, v_cache, start)
    ref = reference(q, k_cache, v_cache, start, torch.float32)
    aten_err = (reference(q, k_cache, v_cache, start, torch.bfloat16).float() - ref).abs().max().item()
    assert got.shape == (length, heads * head_dim) and got.dtype == torch.bfloat16
    assert not got.isnan().any()
    err = (got.float() - ref).abs().max().item()
    # the probabilities are rounded to bf16 before p.v (as ATen's bf16 kernel does), the output once more
    assert err <= max(1.5 * aten_err, 2**-7 * ref.abs().max().item())


def test_kernel_refuses_head_dims_it_does_not_take(kernel):
    assert kernel.prefill_supports(64) and kernel.prefill_supports(128)
    assert not kernel.prefill_supports(96)


def test_engine_prefill_with_the_kernel_matches_aten(smollm_path: Path, perplexity_text: str, kernel, monkeypatch):
    """All-position logits of a 1,100-token prompt in three chunks (the later ones over a cached prefix), kernel
    against ATen's SDPA, same weights: the same next token nearly everywhere, logits within 2% of their range."""
    from dsv4.runtime.engine import engine as engine_module
    from dsv4.runtime.engine.engine import LlamaEngine

    monkeypatch.setattr(engine_module, "PREFILL_CHUNK", 400)
    engine = LlamaEngine.load(smollm_path, precision="auto", context_window=1200, threads=2)
    ids = engine.tokenizer.encode(perplexity_text)[:1100]
    runs = []
    for enabled in ("1", "0"):
        monkeypatch.setenv("DSV4_CPU_ATTENTION", enabled)
        cpu_decode.cpu_decode_kernels.cache_clear()
        assert (cpu_decode.cpu_decode_kernels() is not None) == (enabled == "1")
        runs.append(engine.score(ids))
    cpu_decode.cpu_decode_kernels.cache_clear()
    with_kernel, with_aten = runs
    assert not torch.equal(with_kernel, with_aten)  # the kernel ran: its sums are in another order than ATen's
    spread = with_aten.max() - with_aten.min()
    assert (with_kernel - with_aten).abs().max() <= 0.02 * spread
    assert (with_kernel.argmax(-1) == with_aten.argmax(-1)).float().mean() >= 0.98
