"""Start-up and end-to-end times of the walking skeleton, each against a reference measured in the same run.

    .venv/bin/python evals/skeleton_bench.py [--runs N]

- cold start: `dsv4-code --version` vs a bare `python -c pass` (the interpreter's own start-up)
- TUI ready: mount of the chat screen under Pilot until the agent session is ready (scripted model)
- headless end to end: `dsv4-code run --headless` fixing the calc fixture (scripted model, real pytest) vs the
  fixture's own `pytest` run alone (the floor: headless runs the tests at least twice)
Writes evals/results/skeleton_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = [
    {"content": "Looking.", "tool_calls": [{"name": "read_file", "arguments": {"path": "calc/__init__.py"}}]},
    {"content": "", "tool_calls": [{"name": "edit_file", "arguments": {"path": "calc/__init__.py", "old_string": "a - b", "new_string": "a + b"}}]},
    {"content": "", "tool_calls": [{"name": "run_tests", "arguments": {}}]},
    {"content": "Fixed."},
]
GIT_ENV = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}


def timed(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=check, capture_output=True)
    return time.perf_counter() - start


def make_repo(base: Path) -> Path:
    root = base / "calc"
    (root / "calc").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "calc" / "__init__.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "tests" / "test_calc.py").write_text("from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\npythonpath = ['.']\naddopts = '-p no:cacheprovider'\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)
    return root


def tui_ready_seconds(repo_root: Path) -> float:
    from dsv4.agent.backends.script import ScriptedTurn
    from dsv4.agent.backends.scripted import ScriptedBackend
    from dsv4.agent.config import load_settings
    from dsv4.agent.repo import find_repo
    from dsv4.tui.app import DSV4App
    from dsv4.tui.widgets.status_bar import StatusBar

    async def once() -> float:
        repo = find_repo(repo_root)
        app = DSV4App(repo, load_settings(repo.root), backend=ScriptedBackend([ScriptedTurn(content="hi")]))
        start = time.perf_counter()
        async with app.run_test() as pilot:
            while not (app.screen.query(StatusBar) and app.screen.query_one(StatusBar).state == "ready"):
                await pilot.pause(0.005)
            return time.perf_counter() - start

    return asyncio.run(once())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = {**os.environ, "DSV4_HOME": str(base / "home")}
        env.pop("DEEPSEEK_API_KEY", None)
        cli = [sys.executable, "-m", "dsv4.agent.cli"]
        python_start = statistics.median(timed([sys.executable, "-c", "pass"], base, env) for _ in range(args.runs))
        version = statistics.median(timed([*cli, "--version"], base, env) for _ in range(args.runs))
        tui = statistics.median(tui_ready_seconds(make_repo(base / f"tui{i}")) for i in range(args.runs))
        script = base / "script.json"
        script.write_text(json.dumps(SCRIPT))
        headless, pytest_alone = [], []
        for i in range(args.runs):
            repo = make_repo(base / f"run{i}")
            pytest_alone.append(timed([sys.executable, "-m", "pytest", "-q"], repo, env, check=False))
            headless.append(timed([*cli, "run", "--headless", "fix the test", "--backend", "scripted", "--script",
                                   str(script), "--output-format", "json"], repo, env))
    rows = [
        ("cold start: dsv4-code --version", version, "python -c pass", python_start),
        ("TUI ready (Pilot, scripted model)", tui, None, None),
        ("headless end to end (scripted fix)", statistics.median(headless), "pytest alone on the fixture",
         statistics.median(pytest_alone)),
    ]
    print(f"{'measure':<40} {'seconds':>8}  {'reference':<30} {'ref s':>7} {'ratio':>6}")
    results = []
    for name, value, ref_name, ref in rows:
        ratio = value / ref if ref else None
        print(f"{name:<40} {value:8.3f}  {ref_name or '-':<30} {ref if ref else float('nan'):7.3f} "
              f"{ratio if ratio else float('nan'):6.2f}")
        results.append({"measure": name, "seconds": round(value, 4), "reference": ref_name,
                        "reference_seconds": round(ref, 4) if ref else None, "ratio": round(ratio, 3) if ratio else None})
    out = ROOT / "evals" / "results" / "skeleton_bench.json"
    out.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "runs": args.runs, "results": results}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
