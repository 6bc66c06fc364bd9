"""Resume without re-reading: time to first token when a long prompt prefix is re-read, restored from the
RAM tiers, or restored from disk, on SmolLM2 at 2k/4k/8k tokens; bytes per token per tier; greedy agreement
of the lossy tiers; and llama.cpp's own state save/load for the same prefix as the peer.

    .venv/bin/python evals/resume_bench.py [--lengths 2048 4096 8192] [--threads 2] [--rounds 3]
        [--llamacpp-python PATH | --skip-llamacpp]

Per length L the prompt is a prefix of L - 32 tokens (the part a resumed session shares) plus 8 new tokens
(and 16 greedy steps after it, for the agreement of the lossy tiers, fit the window of L).
Each row is the time from the call to the next-token logits of that prompt, through the engine's `prefill`
with the snapshot store attached (lookup, read and verify, decode, import, then prefill of the 8 new tokens):
- reread: an empty engine and no snapshots (today's cost of a new session);
- ram_hot / ram_warm: the snapshot in this process's RAM tier, lossless / int8 blocks;
- disk_hot / disk_cold: a new store (nothing in RAM) reading the file, lossless / int4 blocks (one pass of
  `runtime/kv/dequant.c` into the block);
- disk_cold_ctx: disk_cold into a block already allocated for the context, as llama.cpp's is: its KV buffer is
  made (and touched) when the context is created, so its `load_state` pays no page faults; a fresh bf16 block
  of 8k positions costs ~0.15-0.2 s of first-touch faults here, which `disk_cold` includes.
  The file was just written, so it is read from the page cache (no root here to drop it): a first read from a
  cold disk adds the file size over the disk's bandwidth.
llama.cpp (llama-cpp-python: `--llamacpp-python`, else $DSV4_LLAMACPP_PYTHON, else evals/.venv-llamacpp, see
evals/runtime_bench.py) evaluates the same prefix from the same GGUF, `save_state()`, then on a reset context
`load_state()` + eval of the 8 tokens, in the same run, so the ratios to it (`*_vs_llamacpp`) share the machine's load.
Every time is the median of `--rounds` rounds (the machine is shared and noisy; the rounds are kept too).
Writes evals/results/resume_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEW_TOKENS = 8
GREEDY_STEPS = 16
LLAMACPP_PYTHON = Path(os.environ.get("DSV4_LLAMACPP_PYTHON") or ROOT / "evals" / ".venv-llamacpp" / "bin" / "python")


def prompt_ids(tokenizer, n: int) -> list[int]:
    text = (ROOT / "tests" / "data" / "perplexity.txt").read_text()
    ids = tokenizer.encode(text)
    while len(ids) < n:
        ids = ids + ids
    return ids[:n]


def greedy(engine, logits, steps: int) -> list[int]:
    out = [int(logits.argmax())]
    for _ in range(steps - 1):
        out.append(int(engine.decode(out[-1]).argmax()))
    return out


def timed_prefill(engine, ids: list[int], reserve: int = 0):
    engine.reset()
    if reserve:
        engine.kv.reserve(reserve)  # allocated and zeroed (touched) before the clock starts
    start = time.perf_counter()
    logits = engine.prefill(ids)
    return time.perf_counter() - start, logits


def median_rounds(row: dict, key: str, values: list[float]) -> float:
    row[key] = statistics.median(values)
    if len(values) > 1:
        row[key + "_rounds"] = [round(v, 4) for v in values]
        row[key + "_min"] = min(values)  # the round the other sessions disturbed least
    return row[key]


def bench_length(engine, store_cls, memory, n: int, rounds: int = 1, reread_rounds: int = 1) -> dict:
    from dsv4.memory.kv_store import TierCaps
    from dsv4.runtime.kv.codec import EncodedSnapshot

    ids = prompt_ids(engine.tokenizer, n)
    prefix = n - 2 * NEW_TOKENS - GREEDY_STEPS  # the prompt and the greedy steps after it fit a window of n
    prompt = ids[: prefix + NEW_TOKENS]
    engine.attach_prefix_cache(None)
    engine.prefill(ids[:64])  # warm-up: the first forward of a process pays for allocations
    row = {"prefix_tokens": prefix, "new_tokens": NEW_TOKENS, "rounds": rounds}
    reread_s = median_rounds(row, "reread_s", [timed_prefill(engine, prompt)[0] for _ in range(reread_rounds)])
    engine.reset()
    engine.prefill(ids[:prefix])
    snap = engine.export_prefix(prefix)
    # the reference for exactness: the engine that kept its cache (the same chunks a restore computes)
    ref_logits = engine.prefill(prompt)
    ref_tokens = greedy(engine, ref_logits, GREEDY_STEPS)
    bytes_per_token = {"hot": snap.nbytes() / prefix, "warm": EncodedSnapshot(snap, "warm").nbytes() / prefix}
    # name -> (file encoding, what this process's RAM tier holds)
    cases = {"ram_hot": ("hot", "hot"), "ram_warm": ("hot", "warm"), "disk_hot": ("hot", None), "disk_cold": ("cold", None),
             "disk_cold_ctx": ("cold", None)}
    for name, (disk_tier, ram) in cases.items():
        store = store_cls(memory, disk_tier=disk_tier, caps=TierCaps(hot_ram=0) if ram == "warm" else None)
        store.clear()
        t0 = time.perf_counter()
        store.save(snap)  # the file, and the RAM copy (demoted to int8 at once when the hot cap is 0)
        row[f"save_{name}_s"] = time.perf_counter() - t0
        bytes_per_token[f"disk_{disk_tier}"] = memory.rows("SELECT bytes FROM kv_snapshots")[0]["bytes"] / prefix
        ram_copy = dict(store.ram)
        engine.attach_prefix_cache(store)
        elapsed, restore = [], []
        for _ in range(rounds):
            store.ram.clear()
            if ram is not None:
                store.ram.update(ram_copy)  # a disk case reads the file as a new process would
            t, logits = timed_prefill(engine, prompt, reserve=len(prompt) if name == "disk_cold_ctx" else 0)
            elapsed.append(t)
            restore.append(engine.kv_report.restore_s)
        report = engine.kv_report
        tokens = greedy(engine, logits, GREEDY_STEPS)
        median_rounds(row, f"{name}_s", elapsed)
        median_rounds(row, f"{name}_restore_s", restore)
        row[f"{name}_tier"] = report.tier
        row[f"{name}_restored_tokens"] = report.restored_tokens
        row[f"{name}_greedy_agreement"] = sum(a == b for a, b in zip(tokens, ref_tokens)) / GREEDY_STEPS
        row[f"{name}_max_logit_err"] = float((logits.float() - ref_logits.float()).abs().max())  # vs never evicted
        engine.attach_prefix_cache(None)
        store.clear()
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
    row["cold_ctx_restore_speedup"] = reread_s / row["disk_cold_ctx_restore_s"]
    row["cold_bytes_vs_hot"] = bytes_per_token["disk_cold"] / bytes_per_token["hot"]
    return row


def llamacpp_peer(python: Path, model_path: Path, lengths: list[int], threads: int, ids: dict[int, list[int]],
                  rounds: int, reread_rounds: int) -> dict:
    if not python.exists():
        return {"status": f"not run: {python} is absent (build it as evals/runtime_bench.py says, or --llamacpp-python)"}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({str(k): v for k, v in ids.items()}, handle)
    cmd = [str(python), str(Path(__file__).resolve()), "--worker-llamacpp", str(model_path), handle.name,
           "--threads", str(threads), "--rounds", str(rounds), "--reread-rounds", str(reread_rounds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if proc.returncode != 0:
        return {"status": "failed", "error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return {"status": "ran", **json.loads(proc.stdout.strip().splitlines()[-1])}


def worker_llamacpp(model_path: str, ids_file: str, threads: int, rounds: int, reread_rounds: int) -> None:
    import llama_cpp

    ids = {int(k): v for k, v in json.loads(Path(ids_file).read_text()).items()}
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=max(ids) + 64, n_threads=threads, n_threads_batch=threads,
                          n_batch=512, verbose=False)
    out = {"engine": f"llama-cpp-python {llama_cpp.__version__}"}
    for n, prompt in ids.items():
        prefix = prompt[: n - 2 * NEW_TOKENS - GREEDY_STEPS]
        new = prompt[len(prefix): len(prefix) + NEW_TOKENS]
        rereads, loads, resumes = [], [], []
        for _ in range(reread_rounds):
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(prefix + new)  # what re-reading costs it: the prefix and the new tokens, as our reread row
            rereads.append(time.perf_counter() - t0)
        llm.reset()
        llm.eval(prefix)
        t0 = time.perf_counter()
        state = llm.save_state()
        save = time.perf_counter() - t0
        for _ in range(rounds):
            llm.reset()
            t0 = time.perf_counter()
            llm.load_state(state)
            loads.append(time.perf_counter() - t0)
            llm.eval(new)
            resumes.append(time.perf_counter() - t0)
        med = statistics.median
        out[str(n)] = {"reread_s": med(rereads), "save_state_s": save, "load_state_s": med(loads),
                       "load_and_eval_new_s": med(resumes), "resume_speedup": med(rereads) / med(resumes),
                       "state_bytes_per_token": state.llama_state_size / len(prefix),
                       "rounds": {"reread_s": rereads, "load_state_s": loads, "load_and_eval_new_s": resumes}}
    print(json.dumps(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per restore timing; the median is reported")
    parser.add_argument("--reread-rounds", type=int, default=1, help="rounds of the (long) re-read")
    parser.add_argument("--llamacpp-python", type=Path, default=LLAMACPP_PYTHON,
                        help="the python of a venv with llama-cpp-python (default: $DSV4_LLAMACPP_PYTHON or evals/.venv-llamacpp)")
    parser.add_argument("--skip-llamacpp", action="store_true")
    parser.add_argument("--worker-llamacpp", nargs=2, metavar=("MODEL", "IDS"))
    args = parser.parse_args()
    if args.worker_llamacpp:
        worker_llamacpp(*args.worker_llamacpp, args.threads, args.rounds, args.reread_rounds)
        return 0
    import torch

    from dsv4.memory import MemoryStore
    from dsv4.memory.kv_store import SnapshotStore
    from dsv4.runtime.engine.engine import LlamaEngine
    from dsv4.runtime.resolve import NAMED_MODELS

    torch.set_num_threads(args.threads)
    model_path = NAMED_MODELS["smollm2-135m"].path()
    engine = LlamaEngine.load(model_path, precision="auto", context_window=max(args.lengths), threads=args.threads)
    home = Path(tempfile.mkdtemp(prefix="resume-bench-"))
    memory = MemoryStore.open(home, embedder=None)
    rows: dict[str, dict] = {}
    doc = {
        "bench": "resume_bench",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other sessions: noisy)",
        "rounds": args.rounds,
        "reread_rounds": args.reread_rounds,
        "threads": args.threads,
        "model": "smollm2-135m (Q4_1 GGUF, precision auto: int4 weights, bf16 K/V)",
        "torch": torch.__version__,
        "note": "disk rows read a file just written (page cache); times are medians of the rounds on a shared machine",
        "smollm2-135m": rows,
        "llamacpp": {"status": "pending"},
    }
    out = ROOT / "evals" / "results" / "resume_bench.json"
    for n in args.lengths:
        rows[str(n)] = bench_length(engine, SnapshotStore, memory, n, args.rounds, args.reread_rounds)
        out.write_text(json.dumps(doc, indent=2) + "\n")  # each length as it is done
        r = rows[str(n)]
        print(f"{n:>6}: reread {r['reread_s']:.2f}s  ram_hot {r['ram_hot_s']:.3f}s  ram_warm {r['ram_warm_s']:.3f}s  "
              f"disk_hot {r['disk_hot_s']:.3f}s  disk_cold {r['disk_cold_s']:.3f}s (restore {r['disk_cold_restore_s']:.3f}s, "
              f"ctx {r['disk_cold_ctx_restore_s']:.3f}s)  "
              f"(warm x{r['warm_speedup']:.0f}, cold x{r['cold_speedup']:.0f}, cold bytes {r['cold_bytes_vs_hot']:.2f} of hot)",
              flush=True)
    peer = {"status": "skipped (--skip-llamacpp)"} if args.skip_llamacpp else llamacpp_peer(
        args.llamacpp_python, model_path, args.lengths, args.threads,
        {n: prompt_ids(engine.tokenizer, n) for n in args.lengths}, args.rounds, args.reread_rounds)
    print(f"llama.cpp peer: {peer.get('status')} {peer.get('error', '')}")
    if peer.get("status") == "ran":
        for n in args.lengths:
            r, their = rows[str(n)], peer[str(n)]
            r["llamacpp_load_state_s"] = their["load_and_eval_new_s"]
            r["llamacpp_reread_s"] = their["reread_s"]
            r["llamacpp_resume_speedup"] = their["resume_speedup"]
            # below 1: ours is faster than llama.cpp's own state load (+ the same 8 new tokens)
            for case in ("ram_warm", "disk_hot", "disk_cold", "disk_cold_ctx"):
                r[f"{case}_vs_llamacpp_load"] = r[f"{case}_s"] / their["load_and_eval_new_s"]
                # the restore alone against load_state alone (the "cold restore faster than its state load")
                r[f"{case}_restore_vs_llamacpp_load_state"] = r[f"{case}_restore_s"] / their["load_state_s"]
            r["llamacpp_load_state_only_s"] = their["load_state_s"]
            r["reread_vs_llamacpp_reread"] = r["reread_s"] / their["reread_s"]
            print(f"{n:>6}: llama.cpp reread {their['reread_s']:.2f}s  load_state+8 {their['load_and_eval_new_s']:.3f}s "
                  f"(x{their['resume_speedup']:.0f});  ours/llama.cpp: warm {r['ram_warm_vs_llamacpp_load']:.2f}  "
                  f"cold {r['disk_cold_vs_llamacpp_load']:.2f}  reread {r['reread_vs_llamacpp_reread']:.2f};  restore alone / "
                  f"load_state {their['load_state_s']:.3f}s: cold {r['disk_cold_restore_vs_llamacpp_load_state']:.2f}  "
                  f"cold_ctx {r['disk_cold_ctx_restore_vs_llamacpp_load_state']:.2f}", flush=True)
    doc["llamacpp"] = peer
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
