"""How fast the tools' deadlines hold: cancelling a running command, and regex search on patterns that
make a backtracking engine run for minutes. Each case against a reference measured in the same run.

    .venv/bin/python evals/tool_deadlines.py

- bash `sleep 30` (with a background child), cancel event set after 0.5 s: seconds from the set to the return
- run_tests with a test that sleeps 30 s, cancelled after 2 s: seconds from the set to the return
- search `(a+)+$` over a file of 2,000 lines of 'a'*40+'!': RE2, vs Python's `re` on ONE line of 'a'*22+'!'
  (every extra 'a' doubles `re`'s time; the file's lines would take it about 2**18 times longer each)
Writes evals/results/tool_deadlines.json.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


def _call(workspace: Workspace, name: str, **arguments) -> tuple[float, dict]:
    toolbox = Toolbox(workspace)
    tool, args = toolbox.prepare(name, json.dumps(arguments))
    result = toolbox.execute(tool, args)
    return time.monotonic(), result.data


def cancel_after(workspace: Workspace, delay: float, name: str, **arguments) -> float:
    set_at: list[float] = []

    def fire() -> None:
        set_at.append(time.monotonic())
        workspace.cancel_event.set()

    threading.Timer(delay, fire).start()
    returned, data = _call(workspace, name, **arguments)
    assert data.get("cancelled") or data.get("reason") == "cancelled", data
    return returned - set_at[0]


def main() -> None:
    os.environ.setdefault("DSV4_HOME", tempfile.mkdtemp(prefix="dsv4-eval-home-"))
    os.environ["VIRTUAL_ENV"] = sys.prefix
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        (repo / "tests").mkdir(parents=True)
        (repo / "tests" / "test_slow.py").write_text("import time\n\n\ndef test_slow():\n    time.sleep(30)\n")
        (repo / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = '-p no:cacheprovider'\n")
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        (repo / "data.txt").write_text(("a" * 40 + "!\n") * 2000)
        rows = []
        bash = cancel_after(Workspace(repo), 0.5, "bash", command="sleep 30 & sleep 30")
        rows.append(("bash sleep 30: cancel -> return", bash, "the command's own length", 30.0))
        tests = cancel_after(Workspace(repo), 2.0, "run_tests", args="tests/test_slow.py")
        rows.append(("run_tests sleeping test: cancel -> return", tests, "the test's own length", 30.0))
        started = time.monotonic()
        returned, data = _call(Workspace(repo), "search", pattern=r"(a+)+$")
        assert data["matches"] == 0 and not data["stopped"]
        search = returned - started
        started = time.monotonic()
        re.search(r"(a+)+$", "a" * 22 + "!")
        backtracking = time.monotonic() - started
        rows.append(("search (a+)+$ 2,000 lines of 40 a's", search, "re on one line of 22 a's", backtracking))
    print(f"{'case':<44} {'seconds':>8}  {'reference':<28} {'ref s':>8}")
    for name, value, ref_name, ref in rows:
        print(f"{name:<44} {value:8.3f}  {ref_name:<28} {ref:8.3f}")
    out = ROOT / "evals" / "results" / "tool_deadlines.json"
    out.write_text(json.dumps({
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "results": [{"case": n, "seconds": round(v, 4), "reference": r, "reference_seconds": round(rs, 4)}
                    for n, v, r, rs in rows]}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
