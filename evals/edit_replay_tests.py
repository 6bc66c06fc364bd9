"""Run exercises' own tests on candidate solution texts, batched: pytest for Python, node for JavaScript.

Python: one pytest process per round over one folder per exercise (an exercise appears at most once
per round, since test modules of the same name cannot share a process). JavaScript: one node process
per candidate with `jsrunner/run.mjs`, a small jest-compatible runner (no npm install needed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

JSRUNNER = Path(__file__).resolve().parent / "jsrunner"
SKIP = {".meta", ".docs", ".approaches", "package.json", "babel.config.js", ".eslintrc", ".npmrc", "LICENSE"}


@dataclass(eq=False)
class TestJob:
    exercise: object  # edit_replay_cases.Exercise
    content: str
    passed: bool | None = None  # None: not run (no node)
    detail: str = ""


def _materialise(job: TestJob, folder: Path) -> None:
    ex = job.exercise
    shutil.copytree(ex.folder, folder, ignore=lambda _d, names: [n for n in names if n in SKIP])
    (folder / ex.solution).write_bytes(job.content.encode())


def _pytest_round(jobs: list[TestJob], scratch: Path) -> None:
    root = Path(tempfile.mkdtemp(dir=scratch, prefix="pytest-"))
    for job in jobs:
        _materialise(job, root / job.exercise.name)
    report = root / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "20",
                    "--continue-on-collection-errors", "-o", "junit_family=xunit1", f"--junitxml={report}",
                    "--rootdir", str(root), str(root)], cwd=root, capture_output=True, timeout=600, check=False)
    ran: dict[str, int] = defaultdict(int)
    bad: dict[str, list[str]] = defaultdict(list)
    for case in ET.parse(report).iter("testcase"):
        name = case.attrib.get("file", case.attrib.get("classname", "")).split("/")[0].split(".")[0]
        ran[name] += 1
        for problem in case:
            if problem.tag in ("failure", "error"):
                bad[name].append(f"{case.attrib.get('name')}: {(problem.attrib.get('message') or '')[:200]}")
    for job in jobs:
        name = job.exercise.name
        job.passed = ran[name] > 0 and not bad[name]
        job.detail = "; ".join(bad[name][:3])
    shutil.rmtree(root)


def _node_job(job: TestJob, scratch: Path) -> None:
    folder = Path(tempfile.mkdtemp(dir=scratch, prefix="node-")) / job.exercise.name
    _materialise(job, folder)
    spec = next(folder.glob("*.spec.js"))
    result = subprocess.run(["node", "--experimental-default-type=module", "--import",
                             (JSRUNNER / "register.mjs").as_uri(), str(JSRUNNER / "run.mjs"), spec.name],
                            cwd=folder, capture_output=True, text=True, timeout=120, check=False)
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"failures": [result.stderr[-300:]]}
    job.passed = result.returncode == 0
    job.detail = "; ".join(summary.get("failures", []))[:500]
    shutil.rmtree(folder.parent)


def run_jobs(jobs: list[TestJob], scratch: Path, workers: int) -> str:
    """Fill in `passed` for every job; returns how JavaScript was judged."""
    rounds: list[list[TestJob]] = []
    for job in (j for j in jobs if j.exercise.lang == "python"):
        slot = next((r for r in rounds if all(o.exercise.name != job.exercise.name for o in r)), None)
        if slot is None:
            rounds.append(slot := [])
        slot.append(job)
    js = [j for j in jobs if j.exercise.lang == "javascript"]
    node = shutil.which("node") is not None
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(_pytest_round, r, scratch) for r in rounds]
        if node:
            futures += [pool.submit(_node_job, j, scratch) for j in js]
        for future in futures:
            future.result()
    return "node + evals/jsrunner (jest-compatible)" if node else "apply-only (node not installed)"
