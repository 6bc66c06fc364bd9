"""SmolLM2 decode ms/token after 8,000 tokens of context: all hot (bf16 C kernel) against the llama live warm
tier holding all but HOT_POSITIONS rows in int8, attended by the warm C kernel (runtime/layers/cpu_decode.c)
and by the torch split attention (`DSV4_CPU_WARM_ATTENTION=0`, what decode with warm rows ran before the kernel).

Run by `evals/decode_attention_bench.py --warm`. The all-hot engine prefills the prompt once; the tiered engine
imports that prefix (and demotes to its budget at once), so both decode after the same K/V. Every mode decodes
the same STEPS forced tokens from the same 8,000 positions, round-robin over --rounds rounds; each step is timed
and a round's number is its median step. Each round also times the prompt's last chunk (PREFILL_CHUNK tokens)
prefilled again over the 7,488 before it (with warm rows: the prefill kernel's or the torch path's). First, one
layer's attention alone (`kernel_rows`): the bf16 kernel over 8,000 hot rows against the warm kernel over 7,680
warm + 320 hot, calls alternating, median of KERNEL_CALLS each. Writes evals/results/decode_attention_warm.json.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from dsv4.runtime.engine.generation import PREFILL_CHUNK

ROOT = Path(__file__).resolve().parent.parent
CONTEXT, WINDOW = 8000, 8192
HOT_POSITIONS = 512  # the hot budget: ~7,500 of the 8,000 positions are warm
STEPS = 32
KERNEL_CALLS = 400
KERNEL_SHAPES = {"smollm2 (3x3, D=64)": (3, 3, 64), "llama3-8b-like (8x4, D=128)": (8, 4, 128)}
MODES = ("all hot", "warm, C kernel", "warm, torch split")


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def kernel_rows() -> list[dict]:
    """One layer at 8,000 positions: hot kernel over all of them against the warm kernel over 7,680 int8 + 320 bf16."""
    from dsv4.runtime.engine.kv_tiers import WarmKV, WarmLayer
    from dsv4.runtime.layers.cpu_decode import cpu_decode_kernels

    kernels, rows = cpu_decode_kernels(), []
    for name, (hkv, group, head_dim) in KERNEL_SHAPES.items():
        block = torch.randn(2, hkv, WINDOW, head_dim).bfloat16()  # (2, Hkv, capacity, D), as the engine lays out a layer
        q = torch.randn(hkv * group, head_dim).bfloat16()
        warm_n = CONTEXT - 320
        warm = WarmKV(1, hkv, head_dim, hot_positions=320)
        warm.append(block[:, :, :warm_n].unsqueeze(0))
        layer, hot_part = WarmLayer(warm, 0), block[:, :, warm_n:]
        calls = {"hot": lambda: kernels.attend(q, hkv * group, block[0], block[1], CONTEXT),
                 "warm": lambda: kernels.attend_warm(q, hkv * group, layer.int8_rows(0), layer.int8_rows(1), warm_n, hot_part[0],
                                                     hot_part[1], CONTEXT - warm_n)}
        times: dict[str, list[float]] = {"hot": [], "warm": []}
        for i in range(KERNEL_CALLS + 20):
            for which, call in calls.items():
                t0 = time.perf_counter()
                call()
                if i >= 20:  # after a warm-up
                    times[which].append(time.perf_counter() - t0)
        hot_us, warm_us = (sorted(times[w])[KERNEL_CALLS // 2] * 1e6 for w in ("hot", "warm"))
        rows.append({"shape": name, "positions": CONTEXT, "warm_positions": warm_n, "hot_kernel_us": hot_us, "warm_kernel_us": warm_us,
                     "warm_over_hot": warm_us / hot_us, "load_average": os.getloadavg()[0]})
        print(f"{name:<28} one layer: hot kernel {hot_us:8.1f} us, warm kernel {warm_us:8.1f} us ({warm_us / hot_us:4.2f}x)", flush=True)
    return rows


def _last_chunk_s(engine, prompt: list[int]) -> float:
    """Seconds to prefill the prompt's last chunk again over the positions before it."""
    engine.kv.truncate(CONTEXT - PREFILL_CHUNK)
    t0 = time.perf_counter()
    engine.prefill(prompt)
    return time.perf_counter() - t0


def _decode_round(engine, forced: list[int]) -> tuple[float, list[int]]:
    """Median ms of the steps, and the argmax of each; the cache is cut back to CONTEXT afterwards."""
    times, tokens = [], []
    for token in forced:
        t0 = time.perf_counter()
        logits = engine.decode(token)
        times.append(time.perf_counter() - t0)
        tokens.append(int(logits.argmax()))
    engine.kv.truncate(CONTEXT)
    return sorted(times)[len(times) // 2] * 1e3, tokens


def run_warm(threads: int, rounds: int, out: Path) -> int:
    from dsv4.runtime.engine.engine import LlamaEngine
    from dsv4.runtime.layers import cpu_decode
    from dsv4.runtime.resolve import NAMED_MODELS

    if cpu_decode.cpu_decode_kernels() is None:
        print("the CPU decode kernels cannot be built here (no C compiler or no AVX-512 BF16)")
        return 2
    kernels_alone = kernel_rows()
    path = NAMED_MODELS["smollm2-135m"].path()
    hot = LlamaEngine.load(path, precision="auto", context_window=WINDOW, threads=threads)
    text = (ROOT / "tests" / "data" / "perplexity.txt").read_text()
    ids = hot.tokenizer.encode(text)
    while len(ids) < CONTEXT + STEPS:
        ids = ids + ids
    prompt, forced = ids[:CONTEXT], ids[CONTEXT : CONTEXT + STEPS]
    t0 = time.perf_counter()
    hot.prefill(prompt)
    prefill_s = time.perf_counter() - t0
    block = hot.kv.block
    per_position = block[:, :, :, 0].numel() * block.element_size()
    tiered = LlamaEngine.load(path, precision="auto", context_window=WINDOW, threads=threads, hot_kv_bytes=HOT_POSITIONS * per_position)
    tiered.import_prefix(hot.export_prefix(CONTEXT))
    warm_rows = [tiered.kv.warm.n]  # after the import, then after each tiered decode round
    load_before = os.getloadavg()
    per_mode: dict[str, list[float]] = {mode: [] for mode in MODES}
    chunk_s: dict[str, list[float]] = {mode: [] for mode in MODES}
    argmax: dict[str, list[int]] = {}
    for _ in range(rounds):
        for mode in MODES:
            os.environ["DSV4_CPU_WARM_ATTENTION"] = "0" if mode == "warm, torch split" else "1"
            cpu_decode.cpu_decode_kernels.cache_clear()
            engine = hot if mode == "all hot" else tiered
            chunk_s[mode].append(_last_chunk_s(engine, prompt))
            ms, argmax[mode] = _decode_round(engine, forced)
            per_mode[mode].append(ms)
            if engine is tiered:
                warm_rows.append(tiered.kv.warm.n)
            print(f"{mode:<18} {ms:7.2f} ms/token, last chunk {chunk_s[mode][-1]:6.2f} s (load {os.getloadavg()[0]:.2f})", flush=True)
    os.environ.pop("DSV4_CPU_WARM_ATTENTION")
    cpu_decode.cpu_decode_kernels.cache_clear()
    best = {mode: min(times) for mode, times in per_mode.items()}
    median = {mode: sorted(times)[len(times) // 2] for mode, times in per_mode.items()}
    rows = [{"mode": mode, "ms_per_token_rounds": per_mode[mode], "best_ms_per_token": best[mode], "median_ms_per_token": median[mode],
             "vs_all_hot": best[mode] / best["all hot"], "median_vs_all_hot": median[mode] / median["all hot"],
             "last_chunk_prefill_s_rounds": chunk_s[mode],
             "best_last_chunk_prefill_s": min(chunk_s[mode]),
             "argmax_agrees_with_all_hot": sum(a == b for a, b in zip(argmax[mode], argmax["all hot"])) / STEPS} for mode in MODES]
    print(f"\nSmolLM2-135M, {CONTEXT} tokens of context, {min(warm_rows)}-{max(warm_rows)} warm rows, {threads} thread(s), best (median) of {rounds} rounds:")
    for row in rows:
        print(f"  {row['mode']:<18} {row['best_ms_per_token']:7.2f} ({row['median_ms_per_token']:7.2f}) ms/token  "
              f"{row['vs_all_hot']:5.2f}x ({row['median_vs_all_hot']:5.2f}x) all hot  "
              f"argmax agrees {row['argmax_agrees_with_all_hot']:.0%}  last chunk {row['best_last_chunk_prefill_s']:.2f} s")
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": _machine(), "threads": threads,
              "context": CONTEXT, "warm_rows": warm_rows, "hot_positions_budget": HOT_POSITIONS, "steps": STEPS, "rounds": rounds,
              "prefill_8000_s": prefill_s, "load_average_before": load_before, "load_average_after": os.getloadavg(), "rows": rows,
              "kernel_rows": kernels_alone}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0
