"""One layer's decode attention: the CPU kernel (runtime/layers/cpu_decode.c) against ATen's SDPA, same bf16 cache.

    OMP_NUM_THREADS=1 .venv/bin/python evals/decode_attention_bench.py [--threads 1] [--lengths 512 2048 8000]
    OMP_NUM_THREADS=1 .venv/bin/python evals/decode_attention_bench.py --warm [--threads 1] [--rounds 3]

`--warm` is the llama live warm tier instead (evals/warm_decode.py): SmolLM2 decode ms/token after 8,000 tokens
all hot against most rows int8 warm, by the warm C kernel and by the torch split attention.

SmolLM2-135M's shape (3 kv heads x 3 queries, head_dim 64) and a Llama-3-8B-like one (8 x 4, 128), cache rows in a
block of 8192 positions as the engine lays it out; median of 200 calls each. The cache read rate is the
K and V bytes of the valid prefix over the median time (one layer's cache fits the L2/L3 here, so this is the
kernel's own rate, above what a whole model's cache gets from memory). Writes evals/results/decode_attention_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"smollm2 (3x3, D=64)": (3, 3, 64), "llama3-8b-like (8x4, D=128)": (8, 4, 128)}


def _median_us(fn, calls: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8000])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None, help="default: evals/results/decode_attention_bench.json (_warm.json)")
    parser.add_argument("--warm", action="store_true", help="engine decode with the live warm tier (evals/warm_decode.py)")
    parser.add_argument("--rounds", type=int, default=3, help="--warm: rounds of every mode, round-robin")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.warm:
        from warm_decode import run_warm  # evals/ is on sys.path: this script's folder

        return run_warm(args.threads, args.rounds, args.out or ROOT / "evals" / "results" / "decode_attention_warm.json")
    args.out = args.out or ROOT / "evals" / "results" / "decode_attention_bench.json"
    from dsv4.runtime.layers.cpu_decode import cpu_decode_kernels

    kernels = cpu_decode_kernels()
    if kernels is None:
        print("the CPU decode kernel cannot be built here (no C compiler or no AVX-512 BF16)", file=sys.stderr)
        return 2
    rows = []
    for name, (hkv, group, head_dim) in SHAPES.items():
        block = torch.randn(2, hkv, 8192, head_dim).bfloat16()
        q = torch.randn(hkv * group, head_dim).bfloat16()
        for n in args.lengths:
            qg, keys, values = q.view(1, hkv, group, head_dim), block[0, :, :n].unsqueeze(0), block[1, :, :n].unsqueeze(0)
            kernel_us = _median_us(lambda: kernels.attend(q, hkv * group, block[0], block[1], n), args.calls)
            aten_us = _median_us(lambda: F.scaled_dot_product_attention(qg, keys, values), args.calls)
            cache_bytes = 2 * hkv * n * head_dim * 2
            rows.append({"shape": name, "length": n, "kernel_us": kernel_us, "aten_sdpa_us": aten_us, "speedup": aten_us / kernel_us,
                         "kernel_gb_s": cache_bytes / kernel_us / 1e3, "aten_gb_s": cache_bytes / aten_us / 1e3})
            r = rows[-1]
            print(f"{name:<28} {n:>6}  kernel {kernel_us:8.1f} us ({r['kernel_gb_s']:5.1f} GB/s)  "
                  f"ATen SDPA {aten_us:8.1f} us ({r['aten_gb_s']:5.1f} GB/s)  {r['speedup']:5.2f}x")
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "threads": args.threads,
              "load_average": os.getloadavg()[0], "calls": args.calls, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
