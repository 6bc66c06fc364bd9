"""The CPU decode kernels (runtime/layers/cpu_decode.c) against fp32 attention and the ATen ops they replace,
their build cache, and the engine's decode with and without them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from dsv4.runtime.layers import cpu_decode  # noqa: E402


@pytest.mark.parametrize(("hkv", "group", "head_dim"), [(3, 3, 64), (2, 7, 64), (4, 2, 128), (1, 8, 128)])
@pytest.mark.parametrize("length", [1, 15, 16, 17, 300, 2500])
def test_kernel_matches_fp32_attention_over_the_valid_prefix(kernel, hkv, group, head_dim, length):
    gen = torch.Generator().manual_seed(length * 31 + head_dim + group)
    capacity = 2560
    # one layer of a (layers, 2, Hkv, capacity, D) block, as the engine's cache lays it out
    block = torch.randn(2, 2, hkv, capacity, head_dim, generator=gen).bfloat16()
    k_cache, v_cache = block[1, 0], block[1, 1]
    k_cache[:, length:] = float("nan")  # past the sequence: must never be read
    q = (torch.randn(hkv * group, head_dim, generator=gen) * 3).bfloat16()
    got = kernel.attend(q, hkv * group, k_cache, v_cache, length)
    qg = q.view(1, hkv, group, head_dim)
    keys, values = k_cache[:, :length].unsqueeze(0), v_cache[:, :length].unsqueeze(0)
    ref = F.scaled_dot_product_attention(qg.float(), keys.float(), values.float()).reshape(1, -1)
    aten_bf16 = F.scaled_dot_product_attention(qg, keys, values).reshape(1, -1)
    assert got.shape == (1, hkv * group * head_dim) and got.dtype == torch.bfloat16
    err = (got.float() - ref).abs().max().item()
    aten_err = (aten_bf16.float() - ref).abs().max().item()
    # the output is rounded to bf16 once (ATen's bf16 kernel rounds as well): within that rounding of fp32
    assert err <= max(1.5 * aten_err, 2 ** -8 * ref.abs().max().item())


def test_norm_kernel_matches_aten_and_leaves_the_sum_as_the_residual(kernel):
    gen = torch.Generator().manual_seed(5)
    x, residual = (torch.randn(3, 576, generator=gen) * 4).bfloat16(), torch.randn(3, 576, generator=gen).bfloat16()
    weight = torch.randn(576, generator=gen).bfloat16()
    total = x + residual
    ref = F.rms_norm(total, (576,), weight, 1e-5)
    summed = x.clone()
    got = kernel.add_rms_norm(summed, residual, weight, 1e-5)
    assert torch.equal(summed, total)  # the residual stream, bit for bit
    assert (got.float() - ref.float()).abs().max() <= 2**-7 * ref.float().abs().max()
    assert (got != ref).float().mean() < 0.01  # only where the float sum's order rounds differently
    alone = kernel.add_rms_norm(x.clone(), None, weight, 1e-5)
    assert (alone.float() - F.rms_norm(x, (576,), weight, 1e-5).float()).abs().max() <= 2**-7 * alone.float().abs().max()


@pytest.mark.parametrize("tokens", [1, 37])
@pytest.mark.parametrize("interleaved", [True, False])
def test_rope_store_matches_the_rotary_layer_and_writes_the_cache_rows(kernel, interleaved, tokens):
    from dsv4.runtime.config import RopeScaling
    from dsv4.runtime.layers.rotary import RotaryEmbedding

    heads, hkv, head_dim, position = 9, 3, 64, 777
    rotary = RotaryEmbedding(head_dim, 2048, 100000.0, RopeScaling(), interleaved=interleaved, dtype=torch.bfloat16)
    gen = torch.Generator().manual_seed(int(interleaved) + tokens)
    qkv = torch.randn(tokens, (heads + 2 * hkv) * head_dim, generator=gen).bfloat16()
    rows = qkv.view(tokens, heads + 2 * hkv, head_dim)
    ref = rotary(rows[:, : heads + hkv], position)  # (T, H+Hkv, D)
    v_ref = rows[:, heads + hkv :].clone()
    block = torch.zeros(2, hkv, 1024, head_dim, dtype=torch.bfloat16)
    end = position + tokens
    kernel.rope_store(qkv, rotary.cos, rotary.sin, position, block[0], block[1], heads, interleaved)
    assert torch.equal(rows[:, :heads], ref[:, :heads])  # q, rotated in place
    assert torch.equal(block[0, :, position:end], ref[:, heads:].transpose(0, 1))  # k, rotated into the cache
    assert torch.equal(block[1, :, position:end], v_ref.transpose(0, 1))
    assert block[:, :, :position].abs().sum() == 0 and block[:, :, end:].abs().sum() == 0


def test_silu_mul_kernel_matches_aten(kernel):
    gate_up = (torch.randn(2, 2 * 1536, generator=torch.Generator().manual_seed(3)) * 3).bfloat16()
    gate, up = gate_up.chunk(2, dim=-1)
    ref = F.silu(gate) * up
    got = kernel.silu_mul(gate_up)
    # expf against ATen's vectorised exp: an fp32 ulp apart, which moves a bf16 rounding now and then
    assert (got.float() - ref.float()).abs().max() <= 2**-7 * ref.float().abs().max()
    assert (got != ref).float().mean() < 0.01


def test_kernel_refuses_shapes_it_does_not_take(kernel):
    assert kernel.supports(3, 64) and kernel.supports(8, 128)
    assert not kernel.supports(9, 64) and not kernel.supports(3, 96)


def test_kernel_is_built_once_and_a_failed_build_is_remembered(tmp_path):
    library = cpu_decode.build_library(tmp_path / "kernels")
    if library is None:
        pytest.skip("no C compiler or no AVX-512 BF16 here")
    stamp = library.stat().st_mtime_ns
    assert cpu_decode.build_library(tmp_path / "kernels") == library and library.stat().st_mtime_ns == stamp
    # a compiler that fails: nothing is cached but the failure, and the next call does not compile again
    env = {**os.environ, "CC": "false", "DSV4_HOME": str(tmp_path / "home")}
    probe = "from dsv4.runtime.layers import cpu_decode as c; print(c.cpu_decode_kernels())"
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
        assert out.strip() == "None"
    built = list((tmp_path / "home" / "cache" / "kernels").iterdir())
    assert [p.suffix for p in built] == [".failed"]


def test_engine_decode_with_the_kernel_matches_aten(smollm_path: Path, perplexity_text: str, kernel, monkeypatch):
    """Logits of a 1,200-token prompt and of cached decode steps after it, kernels against ATen's SDPA, same weights."""
    from dsv4.runtime.engine.engine import LlamaEngine

    engine = LlamaEngine.load(smollm_path, precision="auto", context_window=1400, threads=2)
    ids = engine.tokenizer.encode(perplexity_text)[:1200]
    runs = []
    for enabled in ("1", "0"):
        monkeypatch.setenv("DSV4_CPU_ATTENTION", enabled)
        cpu_decode.cpu_decode_kernels.cache_clear()
        assert (cpu_decode.cpu_decode_kernels() is not None) == (enabled == "1")
        engine.kv.tokens.clear()
        logits = [engine.prefill(ids)]
        for token in ids[1200 - 8 : 1200]:  # forced tokens, so both runs see the same sequence
            logits.append(engine.decode(token))
        runs.append(torch.stack(logits))
    cpu_decode.cpu_decode_kernels.cache_clear()
    with_kernel, with_aten = runs
    spread = with_aten.max() - with_aten.min()
    assert (with_kernel - with_aten).abs().max() <= 0.02 * spread
    assert torch.equal(with_kernel.argmax(-1), with_aten.argmax(-1))
