"""llama.cpp's own state save and restore as the peer of evals/resume_bench.py, run round by round next to ours.

The parent starts this file under a python with llama-cpp-python (`LlamaCppPeer`); the worker loads the same
GGUF once, with the same thread count, and answers one JSON line per request on stdin:
- {"op": "reread", "n": L}: reset, eval the prefix, `save_state()` (kept in the worker for the loads, and
  not counted in the re-read), eval the new tokens: what re-reading costs it;
- {"op": "load", "n": L}: reset, `load_state()` of that state, eval the new tokens.
So each of our rounds can be followed at once by the same round of llama.cpp: the two share the machine's
load of that moment instead of running minutes apart. This file imports neither torch nor dsv4.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def prompt_parts(ids: list[int], n: int, new_tokens: int, greedy_steps: int) -> tuple[list[int], list[int]]:
    """The prefix and the new tokens of length `n`'s prompt, as resume_bench.py cuts them."""
    prefix = n - 2 * new_tokens - greedy_steps
    return ids[:prefix], ids[prefix: prefix + new_tokens]


class LlamaCppPeer:
    def __init__(self, python: Path, model_path: Path, ids_file: Path, threads: int, new_tokens: int,
                 greedy_steps: int) -> None:
        cmd = [str(python), str(Path(__file__).resolve()), str(model_path), str(ids_file), str(threads),
               str(new_tokens), str(greedy_steps)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.info = self.ask({"op": "hello"})

    def ask(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the llama.cpp worker exited ({self.proc.wait()}) on {request}")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def compare_with_llamacpp(row: dict, rereads: list[dict], peer_rounds: dict[str, list[dict]]) -> None:
    """Ratios to llama.cpp from rounds run next to ours: per round (ours / theirs in the same round) and of the
    medians. Below 1: ours is faster."""
    med = statistics.median
    times = [r["reread_s"] for r in rereads]
    lc: dict = {"reread_s": med(times), "reread_s_rounds": times, "save_state_s": rereads[-1]["save_state_s"],
                "state_bytes_per_token": rereads[-1]["state_bytes_per_token"]}
    for case, answers in peer_rounds.items():
        loads = [a["load_state_s"] for a in answers]
        resumes = [a["load_and_eval_new_s"] for a in answers]
        ours_restore, ours_total = row[f"{case}_restore_s_rounds"], row[f"{case}_s_rounds"]
        lc[f"next_to_{case}"] = {"load_state_s": med(loads), "load_and_eval_new_s": med(resumes),
                                 "load_state_s_rounds": loads, "load_and_eval_new_s_rounds": resumes}
        # the "cold restore faster than llama.cpp's state load": our restore alone / its load_state alone
        row[f"{case}_restore_vs_llamacpp_load_state"] = row[f"{case}_restore_s"] / med(loads)
        row[f"{case}_restore_vs_llamacpp_load_state_per_round"] = [round(a / b, 3) for a, b in zip(ours_restore, loads)]
        row[f"{case}_vs_llamacpp_load_and_eval"] = row[f"{case}_s"] / med(resumes)
        row[f"{case}_vs_llamacpp_load_and_eval_per_round"] = [round(a / b, 3) for a, b in zip(ours_total, resumes)]
    row["reread_vs_llamacpp_reread"] = row["reread_s"] / lc["reread_s"]
    row["llamacpp_resume_speedup"] = lc["reread_s"] / lc["next_to_disk_cold"]["load_and_eval_new_s"]
    row["llamacpp"] = lc


def worker(model_path: str, ids_file: str, threads: int, new_tokens: int, greedy_steps: int) -> None:
    import llama_cpp

    ids = {int(k): v for k, v in json.loads(Path(ids_file).read_text()).items()}
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=max(ids) + 64, n_threads=threads, n_threads_batch=threads,
                          n_batch=512, verbose=False)
    states: dict[int, object] = {}
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "hello":
            answer = {"engine": f"llama-cpp-python {llama_cpp.__version__}", "threads": threads}
        else:
            n = request["n"]
            prefix, new = prompt_parts(ids[n], n, new_tokens, greedy_steps)
            llm.reset()
            t0 = time.perf_counter()
            if op == "reread":
                llm.eval(prefix)
                t1 = time.perf_counter()
                states[n] = llm.save_state()
                t2 = time.perf_counter()
                llm.eval(new)
                answer = {"reread_s": t1 - t0 + time.perf_counter() - t2, "save_state_s": t2 - t1,
                          "state_bytes_per_token": states[n].llama_state_size / len(prefix)}
            else:
                llm.load_state(states[n])
                load = time.perf_counter() - t0
                llm.eval(new)
                answer = {"load_state_s": load, "load_and_eval_new_s": time.perf_counter() - t0}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6]))
