"""Wall time of `dsv4-code run --headless --timeout 5` against servers that would otherwise hold it for minutes.

    .venv/bin/python evals/deadline_bench.py [--timeout 5]

Each case is a loopback replay server (agent/backends/replay_server.py) with one fault, and the real CLI in
a subprocess on a fresh git repo: `pings` (keep-alive comments forever), `slow:300` (a 300 s first byte),
`retry_after:86400` (a 429 asking for a day's pause), and `ok` for reference. Reported: wall time, exit
code, report status and the error. Results: evals/results/deadline_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dsv4.agent.backends.replay_server import ReplayServer
from dsv4.agent.backends.script import ScriptedTurn

HERE = Path(__file__).resolve().parent
CASES = ["pings", "slow:300", "retry_after:86400", "ok"]
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com"}


def make_repo(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "README.md").write_text("bench\n")
    env = {**os.environ, **GIT_ENV}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env, capture_output=True)


def run_case(fault: str, timeout_s: float, work: Path) -> dict:
    repo = work / fault.replace(":", "_")
    make_repo(repo)
    turn = ScriptedTurn.model_validate({"content": "Nothing to do."})
    with ReplayServer([turn], faults=[fault]) as server:
        env = {**os.environ, "DSV4_HOME": str(work / "home")}
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "dsv4.agent.cli", "run", "--headless", "say done",
                               "--base-url", server.base_url, "--model", "replay", "--timeout", str(timeout_s),
                               "--output-format", "json"], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=timeout_s + 120)
        wall = time.monotonic() - started
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return {"case": fault, "wall_s": round(wall, 2), "exit_code": proc.returncode, "status": report.get("status"),
            "error": (report.get("error") or "")[:160]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_case(fault, args.timeout, Path(tmp)) for fault in CASES]
    print(f"{'case':<20} {'wall s':>7} {'exit':>5} {'status':<14} error")
    for row in rows:
        print(f"{row['case']:<20} {row['wall_s']:>7.2f} {row['exit_code']:>5} {str(row['status']):<14} {row['error']}")
    out = HERE / "results" / "deadline_bench.json"
    out.write_text(json.dumps({"timeout_s": args.timeout, "python": platform.python_version(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
