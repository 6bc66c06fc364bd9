"""DeepSeek-V4 weight formats on the v4_bench config (random weights): what each packed format costs in
exactness and buys in decode speed, and whether an int4 LM head could be rescued by recomputing its best
candidates from int8 rows.

    .venv/bin/python evals/v4_precision.py [--context 8192] [--threads 1]

For fp32/bf16/int8/int4: max |logit - fp32 logit| and argmax agreement over the last 64 positions of a
300-token prompt, and decode ms/token after a `--context` prompt (median of 4 rounds of 8 steps). For the LM
head alone: argmax agreement with the fp32 head over 200 random hidden states for int8 and for int4 with 16,
256 and 1,024 candidates recomputed from int8 rows, with the time of each. Writes evals/results/v4_precision.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from dsv4.runtime.deepseek_v4.weights import PackedWeight
from dsv4.runtime.deepseek_v4.model import DeepseekV4ForCausalLM
from v4_bench import bench_config, randomise

OUT = Path(__file__).parent / "results" / "v4_precision.json"
FORMATS = ("fp32", "bf16", "int8", "int4")


def decode_ms(model: DeepseekV4ForCausalLM, ids: torch.Tensor) -> float:
    cache = model.new_cache()
    tok = int(model.last_logits(ids, cache, chunk=512).argmax())
    for _ in range(2):
        tok = int(model.last_logits(torch.tensor([tok]), cache).argmax())
    rounds = []
    for _ in range(4):
        t0 = time.perf_counter()
        for _ in range(8):
            tok = int(model.last_logits(torch.tensor([tok]), cache).argmax())
        rounds.append((time.perf_counter() - t0) / 8 * 1000)
    return statistics.median(rounds)


def head_rescue(weight: torch.Tensor, samples: int = 200) -> dict:
    int8, int4 = PackedWeight(weight, "int8"), PackedWeight(weight, "int4")
    g = torch.Generator().manual_seed(3)
    hs = [torch.randn(1, weight.shape[1], generator=g) * (1 + i % 5) for i in range(samples)]

    def refined(coarse: torch.Tensor, h: torch.Tensor, k: int) -> torch.Tensor:
        top = coarse.topk(k, dim=-1).indices[0]
        out = coarse.clone()
        out[0, top] = int8.rows(top) @ h[0]
        return out

    variants = {"int8_refine16": (int8, 16), "int4_refine16": (int4, 16), "int4_refine256": (int4, 256),
                "int4_refine1024": (int4, 1024)}
    out = {}
    for name, (packed, k) in variants.items():
        agree = sum(int(refined(packed(h), h, k)[0].argmax() == (h @ weight.T)[0].argmax()) for h in hs)
        t0 = time.perf_counter()
        for h in hs[:20]:
            refined(packed(h), h, k)
        out[name] = {"argmax_agreement": agree / samples, "ms": (time.perf_counter() - t0) / 20 * 1000}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    model = DeepseekV4ForCausalLM(bench_config(129280)).eval()
    randomise(model)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, 129280, (300,), generator=g)
    long = torch.randint(0, 129280, (args.context,), generator=g)
    head = head_rescue(model.head.weight.detach().clone())
    print(json.dumps({"lm_head": head}), flush=True)
    ref = model(prompt)[-64:]
    rows = {}
    for fmt in FORMATS:
        m = model
        if fmt != "fp32":
            m = copy.deepcopy(model)
            m.pack_weights(fmt)
        got = m(prompt)[-64:]
        rows[fmt] = {"max_abs_logit_diff": (got - ref).abs().max().item(), "logit_range": ref.abs().max().item(),
                     "argmax_agreement": (got.argmax(-1) == ref.argmax(-1)).float().mean().item(),
                     "decode_ms_per_token": decode_ms(m, long)}
        print(json.dumps({fmt: rows[fmt]}), flush=True)
        if m is not model:
            del m
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "context": args.context,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()},
              "formats": rows, "lm_head": head}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\n{'format':<6} {'max|dlogit|':>12} {'argmax agree':>13} {'decode ms':>10}")
    for fmt, r in rows.items():
        print(f"{fmt:<6} {r['max_abs_logit_diff']:>12.3f} {r['argmax_agreement']:>13.2f} {r['decode_ms_per_token']:>10.1f}")
    for name, r in head.items():
        print(f"LM head {name:<16} argmax agreement {r['argmax_agreement']:.3f}, {r['ms']:.2f} ms")


if __name__ == "__main__":
    main()
