"""Triton kernel benchmark (CUDA only): each kernel of kernels/ timed beside its torch reference and its roofline
(bytes moved over the measured copy bandwidth, FLOPs over the measured bf16 matmul rate), at DeepSeek-V4-Flash
shapes; then decode tokens/s of a mid-size random V4 config with the kernels on and off at several context
lengths (the cache is filled with random rows of the right shapes, so no long prefill is needed), and with the
kernels on two variants: the projections and experts kept in FP8 (as a checkpoint's are on CUDA) and a warm tier
(all but 1024 compressed rows of each CSA layer int8 in pinned host memory, the selected rows read quantised).

    .venv/bin/python evals/kernel_bench.py [--contexts 8192 32768 131072] [--decode-steps 32] [--only kernels|decode]

Writes evals/results/kernel_bench.json. Needs a CUDA torch and triton (pip install -e '.[gpu]'); on a machine
without them it says so and exits with status 2. Not a test: numbers depend on the GPU and its load.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

OUT = Path(__file__).parent / "results" / "kernel_bench.json"
DEV = "cuda"


def require_cuda() -> None:
    import importlib.util

    problem = None
    if not torch.cuda.is_available():
        problem = (f"no CUDA device visible to torch {torch.__version__} (a CPU build, or no GPU); this benchmark "
                   "needs a GPU and a CUDA build of torch")
    elif importlib.util.find_spec("triton") is None:
        problem = "triton is not installed (pip install -e '.[gpu]')"
    if problem:
        print(f"kernel_bench: {problem}", file=sys.stderr)
        sys.exit(2)


def timed(fn: Callable[[], object], reps: int = 50) -> float:
    """Median seconds per call, CUDA-event timed after a warm-up (compiles the kernel)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1000)
    return sorted(times)[len(times) // 2]


def machine_rates() -> dict[str, float]:
    x = torch.empty(1 << 28, dtype=torch.float32, device=DEV)  # 1 GiB
    y = torch.empty_like(x)
    copy_s = timed(lambda: y.copy_(x), reps=20)
    a = torch.randn(8192, 8192, device=DEV, dtype=torch.bfloat16)
    mm_s = timed(lambda: a @ a, reps=20)
    return {"bandwidth_GBps": 2 * x.numel() * 4 / copy_s / 1e9, "bf16_matmul_TFLOPs": 2 * 8192 ** 3 / mm_s / 1e12}


def kernel_cases() -> list[tuple[str, Callable, Callable, float, float]]:
    """(name, kernel call, reference call, bytes the kernel must move, FLOPs)."""
    from dsv4.kernels import block_matmul as bm
    from dsv4.kernels import compressor_pool as cp
    from dsv4.kernels import indexer_topk as it
    from dsv4.kernels import kv_quant as kq
    from dsv4.kernels import mhc_mix
    from dsv4.kernels import quant_attention as qa
    from dsv4.kernels import sparse_attention as sa

    cases = []
    H, D, N = 64, 512, 128 + 512  # V4-Flash: 64 heads, K=V of 512, window 128 + top-512 compressed
    for dtype in (torch.bfloat16, torch.float32):
        el = torch.finfo(dtype).bits // 8
        kv = torch.randn(65536, D, device=DEV, dtype=dtype)
        sink = torch.randn(H, device=DEV)
        for S in (1, 512):
            q = torch.randn(S, H, D, device=DEV, dtype=dtype)
            idx = torch.randint(0, kv.shape[0], (S, N), device=DEV, dtype=torch.int32)
            fn = sa.sparse_attention_decode if S == 1 else sa.sparse_attention_prefill
            moved = S * N * D * el + 2 * q.numel() * el + idx.numel() * 4
            cases.append((f"sparse_attention S={S} {str(dtype)[6:]}",
                          lambda q=q, kv=kv, idx=idx, sink=sink, fn=fn: fn(q, kv, idx, sink, D ** -0.5),
                          lambda q=q, kv=kv, idx=idx, sink=sink: sa.sparse_attention_ref(q, kv, idx, sink, D ** -0.5),
                          moved, 4 * S * H * N * D))
    n = 32768  # CSA entries of a 128k context
    for S in (1, 64):
        q = torch.randn(S, 64, 128, device=DEV, dtype=torch.bfloat16)
        keys = torch.randn(n, 128, device=DEV, dtype=torch.bfloat16)
        w = torch.randn(S, 64, device=DEV)
        pos = torch.full((S,), 4 * n, device=DEV)
        cases.append((f"indexer_topk S={S} n={n}", lambda q=q, keys=keys, w=w, pos=pos: it.indexer_topk(q, keys, w, 512, pos),
                      lambda q=q, keys=keys, w=w, pos=pos: it.indexer_topk_ref(q, keys, w, 512, pos),
                      keys.numel() * 2 + S * n * 8, 2 * S * 64 * 128 * n))
    for ratio, c in ((4, 512), (128, 512)):
        width = 2 * c if ratio == 4 else c
        n_rows = 512 if ratio == 4 else 4096
        ckv, score = torch.randn(n_rows, width, device=DEV), torch.randn(n_rows, width, device=DEV)
        ape = torch.randn(ratio, width, device=DEV)
        cases.append((f"compressor_pool {ratio}:1 rows={n_rows}",
                      lambda ckv=ckv, score=score, ape=ape, r=ratio: cp.compressor_pool(ckv, score, ape, None, None, r),
                      lambda ckv=ckv, score=score, ape=ape, r=ratio: cp.compressor_pool_ref(ckv, score, ape, None, None, r),
                      2 * ckv.numel() * 4, 4 * ckv.numel()))
    d = 4096
    h = torch.randn(1, 4, d, device=DEV)
    margs = (torch.randn(24, 4 * d, device=DEV) * 0.02, torch.randn(24, device=DEV), torch.full((3,), 0.5, device=DEV), 1e-6, 1e-6, 20)
    cases.append(("mhc_pre one token d=4096", lambda: mhc_mix.mhc_pre_one_token(h, *margs),
                  lambda: mhc_mix.mhc_pre_one_token_ref(h, *margs), margs[0].numel() * 4 + 2 * h.numel() * 4, 2 * 24 * 4 * d))
    Nw, K = 4096, 4096
    w8 = (torch.randn(Nw, K, device=DEV) * 40).clamp(-448, 448).to(torch.float8_e4m3fn)
    s8 = torch.randint(118, 126, (Nw // 128, K // 128), device=DEV, dtype=torch.uint8)
    w4 = torch.randint(0, 256, (Nw, K // 2), device=DEV, dtype=torch.uint8)
    s4 = torch.randint(120, 130, (Nw, K // 32), device=DEV, dtype=torch.uint8)
    for T in (1, 512):
        x = torch.randn(T, K, device=DEV, dtype=torch.bfloat16)
        cases.append((f"fp8 block linear T={T} {Nw}x{K}", lambda x=x: bm.block_fp8_linear(x, w8, s8), lambda x=x: bm.block_fp8_linear_ref(x, w8, s8),
                      Nw * K + T * (K * 2 + Nw * 4), 2 * T * Nw * K))
        cases.append((f"fp4 linear T={T} {Nw}x{K}", lambda x=x: bm.fp4_linear(x, w4, s4), lambda x=x: bm.fp4_linear_ref(x, w4, s4),
                      Nw * K // 2 + s4.numel() + T * (K * 2 + Nw * 4), 2 * T * Nw * K))
    E, I = 6, 2048  # the chosen experts of one decode token, w1|w3 rows
    wg = torch.randint(0, 256, (E, I, K // 2), device=DEV, dtype=torch.uint8)
    sg = torch.randint(120, 130, (E, I, K // 32), device=DEV, dtype=torch.uint8)
    xg = torch.randn(E, K, device=DEV, dtype=torch.bfloat16)
    off = torch.arange(E + 1, device=DEV, dtype=torch.int32)
    cases.append((f"fp4 grouped experts E={E} {I}x{K}", lambda: bm.grouped_linear(xg, wg, sg, off, "fp4"),
                  lambda: bm.grouped_linear_ref(xg, wg, sg, off, "fp4"), wg.numel() + sg.numel(), 2 * E * I * K))
    rows = torch.randn(32768, 512, device=DEV)
    qd = torch.randn(1, 64, 512, device=DEV)
    sink_d = torch.randn(64, device=DEV)
    for fmt in ("fp8", "int8", "int4"):
        qkv = kq.quantize_kv(rows, fmt)
        cases.append((f"quantize_kv {fmt} 32768x512", lambda fmt=fmt: kq.quantize_kv(rows, fmt),
                      lambda fmt=fmt: kq.quantize_kv_ref(rows, fmt), rows.numel() * 4 + qkv.nbytes(), rows.numel() * 4))
        cases.append((f"quant_decode_attention {fmt} n=32768", lambda qkv=qkv: qa.quant_decode_attention(qd, qkv, sink_d, 512 ** -0.5),
                      lambda qkv=qkv: qa.quant_decode_attention_ref(qd, qkv, sink_d, 512 ** -0.5), qkv.nbytes(),
                      4 * 64 * 32768 * 512))
    # the V4 decode with a warm tier: window + hot candidates by index, the 512 selected warm rows quantised
    hot_pool, warm = rows[:4096], kq.quantize_kv(rows[4096:4608], "int8")
    idx_d = torch.randint(0, 4096, (1, 128 + 256), device=DEV, dtype=torch.int32)
    cases.append(("sparse+quant decode int8 384+512", lambda: qa.sparse_quant_decode_attention(
                      qd, hot_pool, idx_d, sink_d, 512 ** -0.5, warm=warm),
                  lambda: qa.sparse_quant_decode_attention_ref(qd, hot_pool, idx_d, sink_d, 512 ** -0.5, warm=warm),
                  idx_d.numel() * 512 * 4 + warm.nbytes(), 4 * 64 * (384 + 512) * 512))
    return cases


def bench_kernels(rates: dict[str, float]) -> list[dict]:
    out = []
    for name, kernel, ref, moved, flops in kernel_cases():
        t_k, t_r = timed(kernel), timed(ref, reps=10)
        floor = max(moved / (rates["bandwidth_GBps"] * 1e9), flops / (rates["bf16_matmul_TFLOPs"] * 1e12))
        out.append({"kernel": name, "kernel_us": t_k * 1e6, "torch_us": t_r * 1e6, "speedup": t_r / t_k,
                    "roofline_us": floor * 1e6, "x_of_roofline": t_k / floor})
        row = out[-1]
        print(f"{name:42s} {row['kernel_us']:10.1f} {row['torch_us']:10.1f} {row['speedup']:7.1f}x "
              f"{row['roofline_us']:9.1f} {row['x_of_roofline']:6.1f}x", flush=True)
    return out


def synthetic_cache(model, n_tokens: int):
    """A cache as after `n_tokens` of prefill (random rows of the right shapes; partial windows empty)."""
    cfg = model.config
    cache = model.new_cache()
    g = torch.Generator(device=DEV).manual_seed(0)
    for lc, ratio in zip(cache.layers, cfg.compress_ratios):
        lc.win = torch.randn(cfg.window, cfg.head_dim, device=DEV, generator=g) * 0.3
        lc.win_start = n_tokens - cfg.window
        if ratio:
            lc.append_compressed(torch.randn(n_tokens // ratio, cfg.head_dim, device=DEV, generator=g) * 0.3)
        if ratio == 4:
            lc.append_index_keys(torch.randn(n_tokens // 4, cfg.index_head_dim, device=DEV, generator=g) * 0.3)
    cache.length = n_tokens
    return cache


def fp8_blocks(w: torch.Tensor):
    """float (N, K) -> a checkpoint-style FP8 weight with 128x128 power-of-two scales (float32)."""
    from dsv4.runtime.deepseek_v4.quantised import QuantisedTensor

    N, K = w.shape
    amax = torch.nn.functional.pad(w.abs(), (0, -K % 128, 0, -N % 128)).view(-(-N // 128), 128, -(-K // 128), 128)
    scale = torch.exp2(torch.ceil(torch.log2(amax.amax(dim=(1, 3)).clamp(min=1e-4) / 448.0)))
    full = scale.repeat_interleave(128, 0)[:N].repeat_interleave(128, 1)[:, :K]
    return QuantisedTensor("fp8", (w / full).clamp(-448, 448).to(torch.float8_e4m3fn), scale)


def keep_fp8(model) -> None:
    """The model as if loaded from an FP8 checkpoint on CUDA: every keepable projection and expert kept in FP8."""
    from dsv4.runtime.deepseek_v4.moe import Experts
    from dsv4.runtime.deepseek_v4.quantised import KEEPABLE, attach

    linears = {name.removesuffix(".weight"): fp8_blocks(p.detach().float()) for name, p in model.named_parameters()
               if p.dim() == 2 and KEEPABLE.search(name)}
    experts = {name: {e: {w: fp8_blocks(getattr(m, w)[e].detach().float()) for w in ("w1", "w2", "w3")}
                      for e in range(m.n_experts)} for name, m in model.named_modules() if isinstance(m, Experts)}
    attach(model, linears, experts)


def decode_models():
    """(label, model, kernels on, warm tier): the bf16-packed model with the kernels on and off, the FP8-kept one,
    and the bf16 one with a warm tier."""
    sys.path.insert(0, str(Path(__file__).parent))
    from v4_bench import bench_config, randomise

    from dsv4.runtime.deepseek_v4.model import DeepseekV4ForCausalLM
    from dsv4.runtime.deepseek_v4.quantised import pack_around_kept

    models = []
    for fp8 in (False, True):
        model = DeepseekV4ForCausalLM(bench_config(129280)).eval()
        randomise(model)
        if fp8:
            keep_fp8(model)
            pack_around_kept(model.to(DEV), "bf16")
        else:
            model.to(DEV).pack_weights("bf16")
        models.append(model)
    return [("kernels_on", models[0], True, False), ("kernels_off", models[0], False, False),
            ("kernels_on_fp8_weights", models[1], True, False), ("kernels_on_warm_tier", models[0], True, True)]


def bench_decode(contexts: list[int], steps: int) -> list[dict]:
    from dsv4.kernels import dispatch
    from dsv4.runtime.deepseek_v4.kv_tiers import demote_oldest

    variants = decode_models()
    out = []
    for n in contexts:
        row = {"context": n}
        for label, model, enabled, warm in variants:
            with dispatch.kernels_enabled(enabled):
                cache = synthetic_cache(model, n)
                if warm:
                    for lc in cache.layers:
                        demote_oldest(lc, 1024)
                token = torch.tensor([7], device=DEV)
                for _ in range(2):
                    model.last_logits(token, cache)
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(steps):
                    token = model.last_logits(token, cache).argmax().view(1)
                torch.cuda.synchronize()
                row[f"{label}_tok_s"] = steps / (time.perf_counter() - start)
        row["speedup"] = row["kernels_on_tok_s"] / row["kernels_off_tok_s"]
        out.append(row)
        print(f"decode at {n:>7} tokens: kernels on {row['kernels_on_tok_s']:7.1f} tok/s, off "
              f"{row['kernels_off_tok_s']:7.1f} tok/s ({row['speedup']:.2f}x); FP8 weights "
              f"{row['kernels_on_fp8_weights_tok_s']:7.1f}, warm tier {row['kernels_on_warm_tier_tok_s']:7.1f} tok/s",
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contexts", type=int, nargs="+", default=[8192, 32768, 131072])
    ap.add_argument("--decode-steps", type=int, default=32)
    ap.add_argument("--only", choices=["kernels", "decode"], default=None)
    args = ap.parse_args()
    require_cuda()
    torch.manual_seed(0)
    rates = machine_rates()
    gpu = torch.cuda.get_device_name()
    print(f"{gpu}: copy {rates['bandwidth_GBps']:.0f} GB/s, bf16 matmul {rates['bf16_matmul_TFLOPs']:.0f} TFLOP/s")
    result = {"gpu": gpu, "torch": torch.__version__, "python": platform.python_version(), **rates}
    if args.only != "decode":
        print(f"{'kernel':42s} {'triton us':>10s} {'torch us':>10s} {'speedup':>8s} {'floor us':>9s} {'x floor':>7s}")
        result["kernels"] = bench_kernels(rates)
    if args.only != "kernels":
        result["decode"] = bench_decode(args.contexts, args.decode_steps)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
