"""Where a llama decode step spends its time as the context grows: torch.profiler over cached decode steps.

    OMP_NUM_THREADS=2 .venv/bin/python evals/decode_profile.py --model smollm2-135m [--contexts 512 2048 4096 8192] [--aten]

For each context length the cache is filled by prefill, then --steps decode steps run under the profiler.
The ATen ops are grouped into what the issue asks about: attention over the cache (SDPA / bmm / softmax),
dtype conversions (`aten::to`, `_to_copy`, `copy_` of a different dtype), masks built per step
(`arange`, `le`, comparisons, `zeros`/`fill_` feeding a mask), copies into the cache (`copy_`, slicing
stores), the weight kernels (int4/int8/bf16 matmuls, the LM head) and everything else. Prints ms/step per
group and writes evals/results/decode_profile.json (decode_profile_aten.json with --aten: the CPU decode
kernels of runtime/layers/cpu_decode.c turned off). The C kernels are not ATen ops, so their time is the
profiled step's wall time minus every ATen op's self time ("outside ATen": the C kernels and Python).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent

GROUPS = {
    "attention over the cache": ("scaled_dot_product", "flash_attention", "aten::bmm", "softmax", "aten::baddbmm"),
    "weight matmuls (int4/int8/bf16) + LM head": ("int4pack", "int8pack", "aten::linear", "aten::mm", "aten::addmm", "topk"),
    "dtype conversions": ("aten::to", "_to_copy"),
    "masks built per step": ("aten::arange", "aten::le", "aten::lt", "aten::ge", "aten::zeros", "aten::fill_", "aten::masked_fill"),
    "copies (cache writes, contiguous)": ("aten::copy_", "aten::contiguous", "aten::clone", "aten::cat", "aten::stack"),
}


def group_of(name: str) -> str:
    for group, keys in GROUPS.items():
        if any(k in name for k in keys):
            return group
    return "other (norms, rotary, activation, views, Python)"


def profile_context(engine, ids: list[int], steps: int) -> dict:
    engine.kv.tokens.clear()
    token = int(engine.prefill(ids).argmax())
    for _ in range(4):  # warm-up at this length
        token = int(engine.decode(token).argmax())
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            token = int(engine.decode(token).argmax())
    wall_ms = (time.perf_counter() - t0) * 1000 / steps
    # self time per top-level op name; children (e.g. the flash kernel's internals) are in their parent's group
    by_group: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    calls = 0
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1000 / steps
        by_group[group_of(event.key)] += ms
        by_op[event.key] += ms
        calls += event.count
    by_group["outside ATen (C decode kernels, Python)"] = max(0.0, wall_ms - sum(by_group.values()))
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:12]
    return {"wall_ms_per_step_profiled": wall_ms, "aten_calls_per_step": calls / steps,
            "groups_ms": dict(sorted(by_group.items(), key=lambda kv: -kv[1])), "top_ops_ms": dict(top)}


def timed_decode(engine, ids: list[int], steps: int) -> float:
    """ms/step from the median of individually timed steps, without the profiler's overhead."""
    engine.kv.tokens.clear()
    token = int(engine.prefill(ids).argmax())
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        token = int(engine.decode(token).argmax())
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--contexts", type=int, nargs="+", default=[512, 2048, 4096, 8000])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--aten", action="store_true", help="the CPU decode kernels off (DSV4_CPU_ATTENTION=0)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.aten:
        os.environ["DSV4_CPU_ATTENTION"] = "0"
    out = args.out or ROOT / "evals" / "results" / ("decode_profile_aten.json" if args.aten else "decode_profile.json")

    sys.path.insert(0, str(ROOT / "evals"))
    from runtime_bench import _prompt_ids

    from dsv4.runtime.engine.engine import LlamaEngine
    from dsv4.runtime.resolve import resolve_model

    path = resolve_model(args.model).path
    engine = LlamaEngine.load(path, context_window=max(args.contexts) + 3 * args.steps + 8, threads=args.threads)
    results = {}
    with torch.inference_mode():
        for n in args.contexts:
            ids = _prompt_ids(path, n)
            r = profile_context(engine, ids, args.steps)
            r["median_ms_per_step"] = timed_decode(engine, ids, 2 * args.steps)
            results[n] = r
            print(f"context {n}: {r['median_ms_per_step']:.2f} ms/step (profiled {r['wall_ms_per_step_profiled']:.2f}), "
                  f"{r['aten_calls_per_step']:.0f} ATen calls/step")
            for group, ms in r["groups_ms"].items():
                print(f"    {group:<48} {ms:7.2f} ms")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": args.model, "threads": args.threads,
              "steps": args.steps, "cpu_decode_kernels": not args.aten,
              "load_average": os.getloadavg()[0], "note": "self CPU time per step, grouped; profiler overhead inflates small ops",
              "contexts": results}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
