"""Gold replay of the polyglot exercises through the edit tools: does a correct intent get applied?

For every exercise, format and perturbation (see edit_replay_cases.py) the scripted model's calls
run through the real Toolbox on a real file. Outcomes per case:

- correct: the file ends up right on the first try;
- refused_then_correct: the engine refused with a message naming lines to look at, and the model's
  retry (file re-read, more context) got it right;
- refused: refused and not recovered (reported with the message);
- wrong: the engine said it applied the edit but the file is not right. The target is 0.

"Right" means byte-equal to the gold solution in the same file form (line endings, tabs); for the
trailing-whitespace perturbation, equal once trailing whitespace is ignored. Otherwise the
exercise's own tests decide: pytest for Python, and for JavaScript `node` with a small jest-compatible
runner (evals/jsrunner/) when node is installed, else the case counts as wrong. A case whose gold
solution fails its tests in that file form (a control run) is reported as n/a.

    python evals/edit_replay.py [--limit N] [--langs python,javascript] [--out evals/results/edit_replay.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from edit_replay_cases import FORMATS, PERTURBATIONS, Case, load_exercises, make_case, retry_calls  # noqa: E402
from edit_replay_holes import with_holes  # noqa: E402
from edit_replay_tests import TestJob, run_jobs  # noqa: E402

from dsv4.tools.toolbox import Toolbox  # noqa: E402
from dsv4.tools.workspace import Workspace  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "benchmarks" / "polyglot"
USEFUL = re.compile(r"lines? \d+")  # a refusal is useful when it points at lines of the file


def canonical(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).rstrip("\n")


def stages_of(data: dict) -> list[str]:
    """Which matching stage located each edit, from a tool result's structured data."""
    if "stage" in data:
        return [data["stage"]]
    if "edits" in data:
        return [e["stage"] for e in data["edits"]]
    return [s for per_file in data.get("files", {}).get("stages", {}).values() for s in per_file]


def run_calls(workspace: Workspace, calls: list[tuple[str, dict]], stages: Counter | None = None) -> str | None:
    """Run the calls in order; the first error's text, or None when all succeeded."""
    toolbox = Toolbox(workspace)
    for name, arguments in calls:
        tool, args = toolbox.prepare(name, json.dumps(arguments))
        result = toolbox.execute(tool, args)
        if result.is_error:
            return result.text
        if stages is not None:
            stages.update(stages_of(result.data))
    return None


def replay(case: Case, scratch: Path) -> dict:
    folder = Path(tempfile.mkdtemp(dir=scratch))
    target = folder / case.exercise.solution
    target.write_bytes(case.start.encode())
    workspace = Workspace(folder)
    record = {"lang": case.exercise.lang, "exercise": case.exercise.name, "format": case.fmt,
              "perturbation": case.perturbation}
    stages: Counter = Counter()
    error = run_calls(workspace, case.calls, stages)
    record["stages"] = stages
    if error is None and case.perturbation == "resend":
        again = run_calls(workspace, case.calls, Counter())
        if again is not None:
            record["refusal"] = record["retry_refusal"] = again  # a resent edit must not fail: counts as refused
    elif error is not None:
        record["refusal"] = error
        record["useful"] = bool(USEFUL.search(error))
        retry_error = run_calls(workspace, retry_calls(case, target.read_bytes().decode()))
        if retry_error is not None:
            record["retry_refusal"] = retry_error
    record["result"] = target.read_bytes().decode()
    shutil.rmtree(folder)
    return record


def judge(record: dict, case: Case) -> str | None:
    """The outcome when the text alone decides, else None (the tests must decide)."""
    result = record["result"]
    if "retry_refusal" in record:
        return "refused"
    same = result == case.expected or (case.perturbation == "trailing_ws" and canonical(result) == canonical(case.expected))
    if same:
        return "refused_then_correct" if "refusal" in record else "correct"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--langs", default="python,javascript")
    parser.add_argument("--limit", type=int, default=None, help="first N exercises per language")
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: print only)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenarios", default="stub,holes",
                        help="stub: from the exercise stub; holes: from the gold with function bodies emptied")
    args = parser.parse_args(argv)
    started = time.time()
    exercises = load_exercises(args.data, tuple(args.langs.split(",")), args.limit)
    scratch = Path(tempfile.mkdtemp(prefix="edit-replay-"))
    cases: list[tuple[str, Case]] = []
    for index, ex in enumerate(exercises):
        for scenario in args.scenarios.split(","):
            start = ex if scenario == "stub" else with_holes(ex)
            for fmt in FORMATS:
                for perturbation in PERTURBATIONS:
                    case = make_case(start, fmt, perturbation, index) if start is not None else None
                    if case is not None:
                        cases.append((scenario, case))
    records = [{"scenario": scenario, **replay(case, scratch)} for scenario, case in cases]
    apply_seconds = time.time() - started

    # Tests: one control per (exercise, expected text), plus every result that differs from its gold.
    jobs: dict[tuple[str, str, str], TestJob] = {}
    for (_, case), record in zip(cases, records):
        key = (case.exercise.lang, case.exercise.name, case.expected)
        jobs.setdefault(key, TestJob(case.exercise, case.expected))
        outcome = judge(record, case)
        record["outcome"] = outcome
        if outcome is None:
            jobs.setdefault((case.exercise.lang, case.exercise.name, record["result"]),
                            TestJob(case.exercise, record["result"]))
    js_mode = run_jobs(list(jobs.values()), scratch, args.workers)
    for (_, case), record in zip(cases, records):
        control = jobs[(case.exercise.lang, case.exercise.name, case.expected)].passed
        if control is False:
            record["outcome"] = "n/a"
        elif record["outcome"] is None:
            passed = jobs[(case.exercise.lang, case.exercise.name, record["result"])].passed
            base = "refused_then_correct" if "refusal" in record else "correct"
            record["outcome"] = base if passed else "wrong"
    shutil.rmtree(scratch)
    report = summarise(records, exercises, js_mode, time.time() - started, apply_seconds)
    print_table(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if report["totals"]["wrong"] == 0 else 1


def summarise(records: list[dict], exercises: list, js_mode: str, seconds: float, apply_seconds: float) -> dict:
    """Outcomes per format x perturbation; n/a = the gold itself fails its tests in that file form."""
    cells: dict[tuple[str, str], Counter] = defaultdict(Counter)
    stage_use: dict[str, Counter] = defaultdict(Counter)  # which matching stage located edits, first try
    for r in records:
        cells[(r["format"], r["perturbation"])][r["outcome"]] += 1
        cells[(r["format"], r["perturbation"])]["useful_refusals"] += bool(r.get("useful"))
        cells[(r["format"], r["perturbation"])]["refusals"] += "refusal" in r
        stage_use[r["perturbation"]].update(r["stages"])
    totals: Counter = Counter(r["outcome"] for r in records)
    by_scenario = {sc: dict(Counter(r["outcome"] for r in records if r["scenario"] == sc))
                   for sc in sorted({r["scenario"] for r in records})}
    clean = [r for r in records if r["perturbation"] == "clean" and r["outcome"] != "n/a"]
    perturbed = [r for r in records if r["perturbation"] != "clean" and r["outcome"] != "n/a"]
    ok = ("correct", "refused_then_correct")
    return {
        "benchmark": "edit_replay (gold replay of polyglot exercises through the edit tools)",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "processor": platform.machine()},
        "exercises": Counter(ex.lang for ex in exercises),
        "javascript_tests": js_mode,
        "seconds": round(seconds, 1), "apply_seconds": round(apply_seconds, 1),
        "totals": {"cases": len(records), **{k: totals.get(k, 0) for k in
                                             ("correct", "refused_then_correct", "refused", "wrong", "n/a")},
                   "clean_correct_rate": round(sum(r["outcome"] == "correct" for r in clean) / max(1, len(clean)), 4),
                   "perturbed_correct_first_try_rate": round(
                       sum(r["outcome"] == "correct" for r in perturbed) / max(1, len(perturbed)), 4),
                   "perturbed_correct_rate": round(sum(r["outcome"] in ok for r in perturbed) / max(1, len(perturbed)), 4)},
        "scenarios": by_scenario,
        "cells": [{"format": f, "perturbation": p, **dict(c)} for (f, p), c in sorted(cells.items())],
        "stages_used_first_try": {p: dict(c) for p, c in stage_use.items()},
        "not_applicable": sorted({f"{r['lang']}/{r['exercise']} ({r['scenario']}, {r['perturbation']})" for r in records
                                  if r["outcome"] == "n/a"}),
        "not_correct": [{k: v for k, v in r.items() if k != "result"} for r in records
                        if r["outcome"] in ("refused", "wrong")][:50],
    }


def print_table(report: dict) -> None:
    cells = {(c["format"], c["perturbation"]): c for c in report["cells"]}
    width = 14
    print("cell = correct first try + after a useful refusal / cases (refused R, wrong W)")
    print("format".ljust(14) + "".join(p.ljust(width) for p in PERTURBATIONS))
    for fmt in FORMATS:
        row = fmt.ljust(14)
        for p in PERTURBATIONS:
            c = cells.get((fmt, p))
            if not c:
                row += "-".ljust(width)
                continue
            n = sum(c.get(k, 0) for k in ("correct", "refused_then_correct", "refused", "wrong"))
            text = f"{c.get('correct', 0)}"
            text += f"+{c['refused_then_correct']}" if c.get("refused_then_correct") else ""
            text += f"/{n}"
            text += f" R{c['refused']}" if c.get("refused") else ""
            text += f" W{c['wrong']}" if c.get("wrong") else ""
            row += text.ljust(width)
        print(row)
    t = report["totals"]
    for scenario, outcomes in report["scenarios"].items():
        print(f"  scenario {scenario}: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    for p, used in report["stages_used_first_try"].items():
        print(f"  stages used ({p}): " + ", ".join(f"{k} {v}" for k, v in sorted(used.items(), key=lambda kv: -kv[1])))
    print(f"cases {t['cases']}: correct {t['correct']}, after refusal {t['refused_then_correct']}, refused "
          f"{t['refused']}, wrong {t['wrong']}, n/a {t['n/a']}; clean {t['clean_correct_rate']:.1%}, perturbed "
          f"{t['perturbed_correct_rate']:.1%} ({t['perturbed_correct_first_try_rate']:.1%} first try); "
          f"javascript tests: {report['javascript_tests']}; {report['seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
