"""Where a long llama prefill spends its time, chunk by chunk: the attention over the cache against the weight
GEMMs and the rest, with the CPU prefill kernel (runtime/layers/cpu_prefill.c) and with ATen's SDPA.

    OMP_NUM_THREADS=1 .venv/bin/python evals/prefill_profile.py --model smollm2-135m --threads 1 [--rounds 3] [--tokens 8000]

One engine prefills a --tokens prompt from an empty cache in chunks of --chunk tokens, --rounds times for
each attention path (kernel, ATen), alternating, so both see the same machine load. Each layer's self-attention
module and its Linears are timed by forward hooks (a CPU op has finished when it returns): "attention" is the
attention module without its projections (so rotary and the cache writes, on either path), "linear" every
projection GEMM, "other" the rest of a chunk (norms, activation, embedding, Python). Prints per-chunk-position
medians and the whole prefill's tokens/s, and writes evals/results/prefill_profile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


class ModuleTimer:
    """Sums the wall time of every forward of the given modules (their own calls only: none nests in another)."""

    def __init__(self, modules: list[torch.nn.Module]) -> None:
        self.total = 0.0
        self._started: dict[int, float] = {}
        for module in modules:
            module.register_forward_pre_hook(self._pre)
            module.register_forward_hook(self._post)

    def _pre(self, module: torch.nn.Module, args: tuple) -> None:
        self._started[id(module)] = time.perf_counter()

    def _post(self, module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.total += time.perf_counter() - self._started.pop(id(module))

    def take(self) -> float:
        total, self.total = self.total, 0.0
        return total


class Timers:
    """attention_block: each layer's self-attention module (its projections, rotary, cache writes, attention);
    projections: its qkv/o Linears; mlp: the MLP Linears. Attention proper (with rotary and the cache writes, on
    either path) is attention_block - projections."""

    def __init__(self, model: torch.nn.Module) -> None:
        from dsv4.runtime.layers.linear import Linear
        from dsv4.runtime.models.llama import LlamaAttention, LlamaMLP

        blocks = [m for m in model.modules() if isinstance(m, LlamaAttention)]
        self.attention_block = ModuleTimer(blocks)
        self.projections = ModuleTimer([m for b in blocks for m in b.modules() if isinstance(m, Linear)])
        self.mlp = ModuleTimer([m for b in model.modules() if isinstance(b, LlamaMLP) for m in b.modules() if isinstance(m, Linear)])

    def take(self) -> tuple[float, float, float]:
        block, projections, mlp = self.attention_block.take(), self.projections.take(), self.mlp.take()
        return block - projections, projections + mlp, block + mlp  # attention, GEMMs, both


def prefill_chunks(engine, ids: list[int], chunk: int, timers: Timers) -> list[dict]:
    """One prefill from an empty cache, chunk by chunk as the engine runs it; ms per part per chunk."""
    from dsv4.runtime.layers.attention import AttnContext

    engine.kv.tokens.clear()
    engine.kv.reserve(len(ids))
    rows = []
    with torch.inference_mode():
        for start in range(0, len(ids), chunk):
            piece = ids[start : start + chunk]
            timers.take()
            t0 = time.perf_counter()
            hidden = engine.model(torch.tensor(piece), AttnContext.make(start, len(piece)))
            engine.kv.tokens.extend(piece)
            wall = time.perf_counter() - t0
            att, lin, timed = timers.take()
            rows.append({"start": start, "tokens": len(piece), "wall_ms": wall * 1e3, "attention_ms": att * 1e3,
                         "linear_ms": lin * 1e3, "other_ms": (wall - timed) * 1e3})
        engine.model.compute_logits(hidden[-1:])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=8000)
    parser.add_argument("--chunk", type=int, default=512)
    args = parser.parse_args()

    from dsv4.runtime.engine.engine import LlamaEngine
    from dsv4.runtime.layers import cpu_decode
    from dsv4.runtime.resolve import resolve_model

    path = resolve_model(args.model).path
    engine = LlamaEngine.load(path, precision="auto", context_window=args.tokens + 64, threads=args.threads)
    text = (ROOT / "tests" / "data" / "perplexity.txt").read_text()
    ids = engine.tokenizer.encode(text)
    while len(ids) < args.tokens:
        ids = ids + ids
    ids = ids[: args.tokens]
    timers = Timers(engine.model)
    prefill_chunks(engine, ids[: args.chunk], args.chunk, timers)  # warm-up: first-call allocations, kernel build

    runs: dict[str, list[list[dict]]] = defaultdict(list)
    load = []
    for _ in range(args.rounds):
        for path_name, enabled in (("kernel", "1"), ("aten", "0")):
            os.environ["DSV4_CPU_ATTENTION"] = enabled
            cpu_decode.cpu_decode_kernels.cache_clear()
            load.append(os.getloadavg()[0])
            runs[path_name].append(prefill_chunks(engine, ids, args.chunk, timers))
    os.environ.pop("DSV4_CPU_ATTENTION")
    cpu_decode.cpu_decode_kernels.cache_clear()

    summary: dict[str, dict] = {}
    for path_name, rounds in runs.items():
        per_chunk = []
        for i, first in enumerate(rounds[0]):
            per_chunk.append({"start": first["start"], **{part: statistics.median(r[i][part] for r in rounds)
                                                          for part in ("wall_ms", "attention_ms", "linear_ms", "other_ms")}})
        totals = [sum(c["wall_ms"] for c in r) for r in rounds]
        summary[path_name] = {
            "prefill_tok_s": args.tokens / (statistics.median(totals) / 1e3),
            "totals_ms": totals,
            "attention_ms": sum(c["attention_ms"] for c in per_chunk),
            "linear_ms": sum(c["linear_ms"] for c in per_chunk),
            "other_ms": sum(c["other_ms"] for c in per_chunk),
            "chunks": per_chunk,
        }
    print(f"{args.tokens}-token prefill, chunks of {args.chunk}, {args.threads} thread(s), {args.rounds} rounds (medians), "
          f"load average {min(load):.1f}-{max(load):.1f}")
    print(f"{'path':8} {'tok/s':>8} {'attention ms':>13} {'linear ms':>10} {'other ms':>9}")
    for path_name, s in summary.items():
        print(f"{path_name:8} {s['prefill_tok_s']:8.0f} {s['attention_ms']:13.0f} {s['linear_ms']:10.0f} {s['other_ms']:9.0f}")
    print(f"kernel over aten, whole prefill: {summary['kernel']['prefill_tok_s'] / summary['aten']['prefill_tok_s']:.2f}x; "
          f"attention alone: {summary['aten']['attention_ms'] / summary['kernel']['attention_ms']:.2f}x")
    print(f"{'chunk at':>9} " + " ".join(f"{p + ' att/lin/other ms':>30}" for p in summary))
    for i, chunk in enumerate(summary["kernel"]["chunks"]):
        cells = [f"{s['chunks'][i]['attention_ms']:8.1f} {s['chunks'][i]['linear_ms']:8.1f} {s['chunks'][i]['other_ms']:8.1f}"
                 for s in summary.values()]
        print(f"{chunk['start']:9d} " + " ".join(f"{c:>30}" for c in cells))
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model": args.model, "threads": args.threads,
           "tokens": args.tokens, "chunk": args.chunk, "rounds": args.rounds, "load_average": load, "paths": summary}
    (ROOT / "evals" / "results").mkdir(exist_ok=True)
    (ROOT / "evals" / "results" / "prefill_profile.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
