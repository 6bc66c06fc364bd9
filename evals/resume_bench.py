"""Resume without re-reading: time to first token when a long prompt prefix is re-read, restored from the
RAM tiers, or restored from disk, on SmolLM2 at 2k/4k/8k tokens and on a random int8 DeepSeek-V4 (~500M
params) at 8k/32k; bytes per token per tier; greedy agreement of the lossy tiers; and llama.cpp's own state
save/load for the same SmolLM2 prefix as the peer, round by round next to ours.

    .venv/bin/python evals/resume_bench.py [--lengths 2048 4096 8192] [--v4-lengths 8192 32768] [--threads 2]
        [--v4-threads 1] [--rounds 3] [--llamacpp-python PATH | --skip-llamacpp]

Per length L the prompt is a prefix of L - 32 tokens (the part a resumed session shares) plus 8 new tokens
(and 16 greedy steps after it, for the agreement of the lossy tiers, fit the window of L).
Each row is the time from the call to the next-token logits of that prompt, through the engine's `prefill`
with the snapshot store attached (lookup, read and verify, decode, import, then prefill of the 8 new tokens):
- reread: an empty engine and no snapshots (today's cost of a new session);
- ram_hot / ram_warm: the snapshot in this process's RAM tier, lossless / int8 blocks;
- disk_hot / disk_cold: a new store (nothing in RAM) reading the file, lossless / int4 blocks (one pass of
  `runtime/kv/dequant.c` into the block);
- disk_cold_ctx (llama only): disk_cold into a block already allocated for the context, as llama.cpp's is: its
  KV buffer is made (and touched) when the context is created, so its `load_state` pays no page faults; a fresh
  bf16 block of 8k positions costs ~0.15-0.2 s of first-touch faults here, which `disk_cold` includes.
  The file was just written, so it is read from the page cache (no root here to drop it): a first read from a
  cold disk adds the file size over the disk's bandwidth.
V4 (evals/resume_v4.py): the re-read ends a chunk at the prefix (the restore point the agent names), so a
lossless restore + the 8 new tokens is bit for bit the re-read; the lossy tiers quantise what
runtime/deepseek_v4/kv_export.py marks lossy (cold: int4 compressed rows, int8 windows and indexer keys; the
partial states and the last logits exact), recorded per row as `cold_encodings`. `--v4-threads` defaults to 1
as in evals/v4_bench.py (flush-denormal reaches only the calling thread).
llama.cpp (llama-cpp-python: `--llamacpp-python`, else $DSV4_LLAMACPP_PYTHON, else evals/.venv-llamacpp) runs
in a worker process (evals/resume_llamacpp.py) with the same GGUF and thread count; each of our re-read rounds
is followed by one of its re-reads, and each of our disk_cold / disk_cold_ctx rounds by one of its
`load_state()` + eval of the 8 tokens, so every ratio to it (`*_vs_llamacpp*`, also per round) is taken under
the same load. Times are medians of `--rounds` rounds (the rounds are kept, with the load average).
Writes evals/results/resume_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from resume_llamacpp import LlamaCppPeer, compare_with_llamacpp

ROOT = Path(__file__).resolve().parent.parent
NEW_TOKENS = 8
GREEDY_STEPS = 16
LLAMACPP_PYTHON = Path(os.environ.get("DSV4_LLAMACPP_PYTHON") or ROOT / "evals" / ".venv-llamacpp" / "bin" / "python")
OUT = ROOT / "evals" / "results" / "resume_bench.json"


def prompt_ids(tokenizer, n: int) -> list[int]:
    text = (ROOT / "tests" / "data" / "perplexity.txt").read_text()
    ids = tokenizer.encode(text)
    while len(ids) < n:
        ids = ids + ids
    return ids[:n]


def greedy(engine, logits, steps: int) -> tuple[list[int], list]:
    """`steps` greedy tokens from `logits` on, and the logits each was chosen from."""
    seen = [logits]
    out = [int(logits.argmax())]
    for _ in range(steps - 1):
        seen.append(engine.decode(out[-1]))
        out.append(int(seen[-1].argmax()))
    return out, seen


def forced(engine, logits, ref_tokens: list[int], ref_logits: list) -> tuple[float, float]:
    """Feed the reference's greedy tokens (teacher forcing): the share of steps whose argmax is the reference's,
    and the largest logit difference over the steps. Unlike free-running greedy agreement, one flipped choice
    does not make every later step differ."""
    agree, err = 0, 0.0
    for i, want in enumerate(ref_tokens):
        if i:
            logits = engine.decode(ref_tokens[i - 1])
        agree += int(logits.argmax()) == want
        err = max(err, float((logits.float() - ref_logits[i].float()).abs().max()))
    return agree / len(ref_tokens), err


def top2_margin(logits) -> float:
    top = logits.float().topk(2).values
    return float(top[0] - top[1])


def timed_prefill(engine, ids: list[int], reserve: int = 0, restore_points: tuple[int, ...] | list[int] = ()):
    engine.reset()
    if reserve:
        engine.kv.reserve(reserve)  # allocated and zeroed (touched) before the clock starts
    start = time.perf_counter()
    logits = engine.prefill(ids, restore_points=restore_points)
    return time.perf_counter() - start, logits


def median_rounds(row: dict, key: str, values: list[float]) -> float:
    row[key] = statistics.median(values)
    row[key + "_rounds"] = [round(v, 4) for v in values]
    row[key + "_min"] = min(values)  # the round the other sessions disturbed least
    return row[key]


def load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def restore_cases(engine, store_cls, memory, row: dict, snap, prompt: list[int], ref_tokens: list[int], ref_steps: list,
                  cases: dict, rounds: int, peer_round=None) -> dict:
    """Save `snap` in each tier, then time `rounds` restores of `prompt` through prefill; `peer_round(case)` runs
    after each round of a case it wants (llama.cpp's load_state next to our disk_cold). Returns bytes per token."""
    from dsv4.memory.kv_store import TierCaps
    from dsv4.runtime.kv.codec import EncodedSnapshot

    prefix = snap.length
    bytes_per_token = {"hot": snap.nbytes() / prefix, "warm": EncodedSnapshot(snap, "warm").nbytes() / prefix}
    for name, (disk_tier, ram) in cases.items():
        store = store_cls(memory, disk_tier=disk_tier, caps=TierCaps(hot_ram=0) if ram == "warm" else None)
        store.clear()
        t0 = time.perf_counter()
        store.save(snap)  # the file, and the RAM copy (demoted to int8 at once when the hot cap is 0)
        row[f"save_{name}_s"] = time.perf_counter() - t0
        bytes_per_token[f"disk_{disk_tier}"] = memory.rows("SELECT bytes FROM kv_snapshots")[0]["bytes"] / prefix
        ram_copy = dict(store.ram)
        engine.attach_prefix_cache(store)
        elapsed, restore, loads = [], [], []
        for _ in range(rounds):
            store.ram.clear()
            if ram is not None:
                store.ram.update(ram_copy)  # a disk case reads the file as a new process would
            loads.append(load_1m())
            t, logits = timed_prefill(engine, prompt, reserve=len(prompt) if name == "disk_cold_ctx" else 0)
            elapsed.append(t)
            restore.append(engine.kv_report.restore_s)
            if peer_round is not None:
                peer_round(name)
        report = engine.kv_report
        tokens, _ = greedy(engine, logits, GREEDY_STEPS)
        _, logits = timed_prefill(engine, prompt)  # restored again, for the teacher-forced steps
        row[f"{name}_forced_agreement"], row[f"{name}_forced_max_logit_err"] = forced(engine, logits, ref_tokens, ref_steps)
        median_rounds(row, f"{name}_s", elapsed)
        median_rounds(row, f"{name}_restore_s", restore)
        row[f"{name}_load_1m_rounds"] = loads
        row[f"{name}_tier"] = report.tier
        row[f"{name}_restored_tokens"] = report.restored_tokens
        row[f"{name}_greedy_agreement"] = sum(a == b for a, b in zip(tokens, ref_tokens)) / GREEDY_STEPS
        row[f"{name}_max_logit_err"] = float((logits.float() - ref_steps[0].float()).abs().max())  # vs never evicted
        engine.attach_prefix_cache(None)
        store.clear()
    return bytes_per_token


def speedups(row: dict, bytes_per_token: dict, rounds: int) -> None:
    reread_s = row["reread_s"]
    row["bytes_per_token"] = bytes_per_token
    row["warm_speedup"] = reread_s / row["ram_warm_s"]
    row["cold_speedup"] = reread_s / row["disk_cold_s"]
    row["lossless_disk_speedup"] = reread_s / row["disk_hot_s"]
    # the restore alone (lookup, read, verify, dequantise, import) against the re-read: what the KV tiers cost,
    # without the one forward pass over the new tokens that every resume pays (a decode step's weight traffic)
    row["warm_restore_speedup"] = reread_s / row["ram_warm_restore_s"]
    row["cold_restore_speedup"] = reread_s / row["disk_cold_restore_s"]
    if rounds > 1:
        row["warm_speedup_best"] = reread_s / row["ram_warm_s_min"]
        row["cold_speedup_best"] = reread_s / row["disk_cold_s_min"]
    row["cold_bytes_vs_hot"] = bytes_per_token["disk_cold"] / bytes_per_token["hot"]


LLAMA_CASES = {"ram_hot": ("hot", "hot"), "ram_warm": ("hot", "warm"), "disk_hot": ("hot", None),
               "disk_cold": ("cold", None), "disk_cold_ctx": ("cold", None)}  # name -> (file tier, RAM tier held)
V4_CASES = {k: v for k, v in LLAMA_CASES.items() if k != "disk_cold_ctx"}  # a V4 cache has no block to reserve


def bench_length(engine, store_cls, memory, n: int, rounds: int = 1, reread_rounds: int = 1,
                 peer: LlamaCppPeer | None = None) -> dict:
    ids = prompt_ids(engine.tokenizer, n)
    prefix = n - 2 * NEW_TOKENS - GREEDY_STEPS  # the prompt and the greedy steps after it fit a window of n
    prompt = ids[: prefix + NEW_TOKENS]
    engine.attach_prefix_cache(None)
    engine.prefill(ids[:64])  # warm-up: the first forward of a process pays for allocations
    row: dict = {"prefix_tokens": prefix, "new_tokens": NEW_TOKENS, "rounds": rounds, "reread_load_1m": load_1m()}
    rereads, theirs = [], []
    for _ in range(reread_rounds):
        rereads.append(timed_prefill(engine, prompt)[0])
        if peer is not None:
            theirs.append(peer.ask({"op": "reread", "n": n}))  # the same round, right after ours
    median_rounds(row, "reread_s", rereads)
    engine.reset()
    engine.prefill(ids[:prefix])
    snap = engine.export_prefix(prefix)
    # the reference for exactness: the engine that kept its cache (the same chunks a restore computes)
    ref_tokens, ref_steps = greedy(engine, engine.prefill(prompt), GREEDY_STEPS)
    row["ref_top2_margin_median"] = statistics.median(map(top2_margin, ref_steps))
    peer_rounds: dict[str, list[dict]] = {"disk_cold": [], "disk_cold_ctx": []}

    def peer_round(case: str) -> None:
        if case in peer_rounds:
            peer_rounds[case].append(peer.ask({"op": "load", "n": n}))

    bytes_per_token = restore_cases(engine, store_cls, memory, row, snap, prompt, ref_tokens, ref_steps, LLAMA_CASES,
                                    rounds, peer_round if peer is not None else None)
    speedups(row, bytes_per_token, rounds)
    row["cold_ctx_restore_speedup"] = row["reread_s"] / row["disk_cold_ctx_restore_s"]
    if peer is not None:
        compare_with_llamacpp(row, theirs, peer_rounds)
    return row


def bench_v4_length(engine, store_cls, memory, n: int, rounds: int, reread_rounds: int) -> dict:
    from resume_v4 import v4_reference

    ids = prompt_ids(engine.tokenizer, n)
    prefix = n - 2 * NEW_TOKENS - GREEDY_STEPS
    prompt = ids[: prefix + NEW_TOKENS]
    row: dict = {"prefix_tokens": prefix, "new_tokens": NEW_TOKENS, "rounds": rounds, "reread_load_1m": load_1m()}
    rereads, snap, ref_logits = v4_reference(engine, ids, prefix, prompt, reread_rounds, timed_prefill)
    median_rounds(row, "reread_s", rereads)
    ref_tokens, ref_steps = greedy(engine, ref_logits, GREEDY_STEPS)
    row["ref_top2_margin_median"] = statistics.median(map(top2_margin, ref_steps))  # random weights: flat logits
    bytes_per_token = restore_cases(engine, store_cls, memory, row, snap, prompt, ref_tokens, ref_steps, V4_CASES,
                                    rounds)
    speedups(row, bytes_per_token, rounds)
    from dsv4.runtime.kv.codec import EncodedSnapshot

    cold = EncodedSnapshot(snap, "cold").meta.tensors
    row["cold_encodings"] = {name.split(".", 2)[-1]: info.encoding for name, info in sorted(cold.items())}
    return row


def print_row(label: str, n: int, r: dict) -> None:
    ctx = f", ctx {r['disk_cold_ctx_restore_s']:.3f}s" if "disk_cold_ctx_restore_s" in r else ""
    print(f"{label} {n:>6}: reread {r['reread_s']:.2f}s  ram_hot {r['ram_hot_s']:.3f}s  ram_warm {r['ram_warm_s']:.3f}s  "
          f"disk_hot {r['disk_hot_s']:.3f}s  disk_cold {r['disk_cold_s']:.3f}s (restore {r['disk_cold_restore_s']:.3f}s{ctx})  "
          f"(warm x{r['warm_speedup']:.0f}, cold x{r['cold_speedup']:.0f}, cold bytes {r['cold_bytes_vs_hot']:.2f} of hot)",
          flush=True)
    if "llamacpp" in r:
        lc = r["llamacpp"]
        print(f"{label} {n:>6}: llama.cpp reread {lc['reread_s']:.2f}s  load_state {lc['next_to_disk_cold']['load_state_s']:.3f}s"
              f"  ours/theirs: cold restore {r['disk_cold_restore_vs_llamacpp_load_state']:.2f} "
              f"{r['disk_cold_restore_vs_llamacpp_load_state_per_round']}  cold_ctx "
              f"{r['disk_cold_ctx_restore_vs_llamacpp_load_state']:.2f}  reread {r['reread_vs_llamacpp_reread']:.2f}", flush=True)


def start_peer(args, model_path: Path, tokenizer) -> tuple[LlamaCppPeer | None, dict]:
    if args.skip_llamacpp:
        return None, {"status": "skipped (--skip-llamacpp)"}
    if not args.llamacpp_python.exists():
        return None, {"status": f"not run: {args.llamacpp_python} is absent (--llamacpp-python)"}
    ids_file = Path(tempfile.mkdtemp(prefix="resume-peer-")) / "ids.json"
    ids_file.write_text(json.dumps({str(n): prompt_ids(tokenizer, n) for n in args.lengths}))
    peer = LlamaCppPeer(args.llamacpp_python, model_path, ids_file, args.threads, NEW_TOKENS, GREEDY_STEPS)
    return peer, {"status": "ran, interleaved round by round", **peer.info}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="*", default=[2048, 4096, 8192], help="SmolLM2 lengths")
    parser.add_argument("--v4-lengths", type=int, nargs="*", default=[8192, 32768], help="random V4 lengths")
    parser.add_argument("--threads", type=int, default=2, help="SmolLM2 and llama.cpp threads")
    parser.add_argument("--v4-threads", type=int, default=1)
    parser.add_argument("--v4-vocab", type=int, default=129280)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per restore timing; the median is reported")
    parser.add_argument("--reread-rounds", type=int, default=1, help="rounds of the (long) re-read")
    parser.add_argument("--llamacpp-python", type=Path, default=LLAMACPP_PYTHON,
                        help="the python of a venv with llama-cpp-python (default: $DSV4_LLAMACPP_PYTHON or evals/.venv-llamacpp)")
    parser.add_argument("--skip-llamacpp", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import torch

    from dsv4.memory import MemoryStore
    from dsv4.memory.kv_store import SnapshotStore

    home = Path(tempfile.mkdtemp(prefix="resume-bench-"))
    memory = MemoryStore.open(home, embedder=None)
    # merged into the file: a run of one model (`--lengths` with no values skips SmolLM2) replaces only the
    # lengths it measures and keeps the other rows; each model's last run is described under "runs"
    doc: dict = json.loads(args.out.read_text()) if args.out.exists() else {"bench": "resume_bench"}
    run: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other sessions: noisy)",
        "load_1m_at_start": load_1m(),
        "rounds": args.rounds,
        "reread_rounds": args.reread_rounds,
        "threads": args.threads,
        "v4_threads": args.v4_threads,
        "torch": torch.__version__,
        "note": "disk rows read a file just written (page cache); times are medians of the rounds on a shared machine",
        "lengths": args.lengths, "v4_lengths": args.v4_lengths,
    }
    runs = doc.setdefault("runs", {})
    if args.lengths:
        from dsv4.runtime.engine.engine import LlamaEngine
        from dsv4.runtime.resolve import NAMED_MODELS

        torch.set_num_threads(args.threads)
        model_path = NAMED_MODELS["smollm2-135m"].path()
        engine = LlamaEngine.load(model_path, precision="auto", context_window=max(args.lengths), threads=args.threads)
        doc["model"] = "smollm2-135m (Q4_1 GGUF, precision auto: int4 weights, bf16 K/V)"
        runs["smollm2-135m"] = run
        rows: dict[str, dict] = doc.setdefault("smollm2-135m", {})
        peer, doc["llamacpp"] = start_peer(args, model_path, engine.tokenizer)
        print(f"llama.cpp peer: {doc['llamacpp']['status']}", flush=True)
        for n in args.lengths:
            rows[str(n)] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            **bench_length(engine, SnapshotStore, memory, n, args.rounds, args.reread_rounds, peer)}
            args.out.write_text(json.dumps(doc, indent=2) + "\n")  # each length as it is done
            print_row("smollm2", n, rows[str(n)])
        if peer is not None:
            peer.close()
        del engine
    if args.v4_lengths:
        from resume_v4 import random_v4_engine, v4_config_summary
        from v4_bench import bench_config

        torch.set_num_threads(args.v4_threads)
        torch.set_flush_denormal(True)  # random weights make denormals, 10-30x slower on x86 (as v4_bench.py)
        cfg = bench_config(args.v4_vocab)
        engine = random_v4_engine(cfg, home / "random-v4", context_window=max(args.v4_lengths), threads=args.v4_threads)
        doc["v4_model"] = v4_config_summary(cfg, engine)
        runs["deepseek-v4-random"] = run
        rows = doc.setdefault("deepseek-v4-random", {})
        for n in args.v4_lengths:
            rows[str(n)] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            **bench_v4_length(engine, SnapshotStore, memory, n, args.rounds, args.reread_rounds)}
            args.out.write_text(json.dumps(doc, indent=2) + "\n")
            print_row("v4", n, rows[str(n)])
    run["load_1m_at_end"] = load_1m()
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
