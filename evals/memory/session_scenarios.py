"""Memory promises through real sessions: headless `dsv4-code run` processes with the scripted model, one fresh
`$DSV4_HOME` and git repository per scenario, each step a new process (a later session, or `--continue`).

    .venv/bin/python evals/memory/session_scenarios.py [--out evals/results/memory_sessions.json]

Scenarios (each step's checks in brackets):
- capture-override-forget: a preference captured from the user's message (with `--debug`, so a log holds the
  task), a paraphrased override in a later session [the stream says `replaces` with an undo handle; the block
  the model reads, `memory context`, holds only the newest value], the model's `forget` tool in a continued
  session [byte scan], a resumed session [byte scan; neither value in the block];
- remember-spans-forget: the model's `remember` tool, then a tool argument and the reply carrying the value,
  a later prompt repeating it upper-cased, `memory forget --key` from the command line [its reply names what
  a forget cannot reach; byte scan], a continued session [byte scan];
- keyed-override-resume: a keyed value overridden in three later sessions, resumed [only the newest value
  in the block].

Byte scan (memory/bytescan.py): every file under `$DSV4_HOME`, for each forgotten item's text, the sentence
it was captured from and its distinctive spans (memory/spans.py), raw, lower-case, JSON-escaped, base64 and
UTF-16. Before each forget the same scan must find the texts (in sessions.db, memory/ and the debug log where
one is written), so a clean scan after it means something. Target: 0 traces, every check passing.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from session_repo import git_repo  # noqa: E402

from dsv4.memory import bytescan  # noqa: E402
from dsv4.memory.spans import memory_spans  # noqa: E402


@dataclass
class Sandbox:
    root: Path
    checks: list[dict[str, Any]] = field(default_factory=list)
    scans: list[dict[str, Any]] = field(default_factory=list)
    run_seconds: list[float] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    def setup(self) -> None:
        git_repo(self.repo)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DSV4_HOME": str(self.home), "OMP_NUM_THREADS": "1"}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "dsv4.agent.cli", *args], cwd=self.repo, env=env, text=True,
                              capture_output=True, timeout=300)
        self.run_seconds.append(time.perf_counter() - started)
        return proc

    def run(self, task: str, script: list[dict[str, Any]], *flags: str) -> list[dict[str, Any]]:
        """One headless run; its stream-json events."""
        path = self.root / f"script-{len(self.run_seconds)}.json"
        path.write_text(json.dumps(script))
        proc = self.cli("run", "--headless", task, "--backend", "scripted", "--script", str(path),
                        "--output-format", "stream-json", *flags)
        self.check(f"run {task[:40]!r} exits 0", proc.returncode == 0, proc.stderr.strip()[-300:])
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    def context(self) -> str:
        return self.cli("memory", "context").stdout

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append({"check": name, "ok": bool(ok), **({"detail": detail} if detail and not ok else {})})

    def scan(self, step: str, texts: list[str]) -> None:
        needles = sorted({t for text in texts for t in [text, *memory_spans(text)]})
        traces = bytescan.scan(self.home, needles)
        self.scans.append({"step": step, "needles": len(needles), "files": sum(1 for p in self.home.rglob("*") if p.is_file()),
                           "traces": [str(t) for t in traces]})


    def planted(self, texts: list[str], *folders: str) -> None:
        """Before a forget: the scan must see the texts (else a clean scan after it proves nothing)."""
        needles = sorted({t for text in texts for t in [text, *memory_spans(text)]})
        where = {t.path.relative_to(self.home).parts[0] for t in bytescan.scan(self.home, needles)}
        self.check(f"before the forget the scan finds them in {', '.join(folders)}", set(folders) <= where, str(where))


def memory_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("type") == "memory_changed"]


def capture_override_forget(box: Sandbox) -> None:
    first = "From now on, always run the tests with pytest --hint=qzA17."
    events = box.run(f"Nothing to fix yet. {first}", [{"content": "Understood: pytest --hint=qzA17 from now on."}],
                     "--debug")
    captured = memory_events(events)
    box.check("capture: one memory_changed 'captured'", [e["action"] for e in captured] == ["captured"], str(captured))
    box.check("capture: the block holds the value", "qzA17" in box.context())
    old_text = captured[0]["text"] if captured else first

    second = "Going forward, the test suite should be run with nox -s qzB23."
    events = box.run(second, [{"content": "Will do."}])
    [override] = memory_events(events) or [{}]
    box.check("override: the event says what it replaces, with an undo handle",
              "qzA17" in (override.get("replaces") or "") and override.get("undo") == override.get("item_id"),
              str(override))
    block = box.context()
    box.check("override: only the newest value reaches the model", "qzB23" in block and "qzA17" not in block, block)

    box.planted([first, second], "sessions.db", "memory", "logs")
    events = box.run("Forget my test runner preference.",
                     [{"content": "", "tool_calls": [{"name": "forget", "arguments": {"id_or_key": override.get("item_id", "")}}]},
                      {"content": "Forgotten."}], "--continue")
    box.check("forget: a memory_changed 'forgotten'", any(e["action"] == "forgotten" for e in memory_events(events)))
    forgotten = [first, second, old_text, override.get("text") or second]
    box.scan("after the forget tool", forgotten)

    box.run("hello again", [{"content": "hi"}], "--continue")
    box.scan("after a resumed session", forgotten)
    block = box.context()
    box.check("resume: neither value in the block", "qzA17" not in block and "qzB23" not in block, block)


def remember_spans_forget(box: Sandbox) -> None:
    text = "The staging host is stg-qzC31.example.test"
    box.run("Remember where staging is: stg-qzC31.example.test",
            [{"content": "", "tool_calls": [{"name": "remember", "arguments": {"text": text, "key": "staging host"}}]},
             {"content": "", "tool_calls": [{"name": "search", "arguments": {"pattern": "stg-qzC31"}}]},
             {"content": "Saved: stg-qzC31.example.test is staging."}])
    box.check("remember: the block holds it", "stg-qzC31" in box.context())
    box.run("Deploy to STG-QZC31.EXAMPLE.TEST when ready", [{"content": "ok"}])
    box.planted(["stg-qzC31", "STG-QZC31.EXAMPLE.TEST"], "sessions.db", "memory")
    proc = box.cli("memory", "forget", "--key", "staging host")
    box.check("forget --key exits 0 and names what it cannot reach",
              proc.returncode == 0 and "git history" in proc.stdout, proc.stdout + proc.stderr)
    forgotten = [text, "Remember where staging is: stg-qzC31.example.test", "stg-qzC31", "STG-QZC31.EXAMPLE.TEST"]
    box.scan("after memory forget --key", forgotten)
    box.run("continue", [{"content": "ok"}], "--continue")
    box.scan("after a continued session", forgotten)


def keyed_override_resume(box: Sandbox) -> None:
    values = ["eu-west-qz1", "us-east-qz2", "ap-south-qz3", "sa-east-qz4"]
    phrasings = ["The deploy region is {v}", "We deploy to {v} now", "Deployments go to region {v}",
                 "Use {v} as the deploy region"]
    for value, phrasing in zip(values, phrasings):
        box.run(f"note the region {value}", [
            {"content": "", "tool_calls": [{"name": "remember", "arguments": {"text": phrasing.format(v=value),
                                                                               "key": "deploy region"}}]},
            {"content": "noted"}])
    box.run("where do we deploy?", [{"content": "ok"}], "--continue")
    block = box.context()
    box.check("keyed: only the newest of four values reaches the model",
              values[-1] in block and not any(v in block for v in values[:-1]), block)


SCENARIOS: dict[str, Callable[[Sandbox], None]] = {
    "capture-override-forget": capture_override_forget,
    "remember-spans-forget": remember_spans_forget,
    "keyed-override-resume": keyed_override_resume,
}


def run_suite() -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="dsv4-sessions-") as tmp:
        for name, scenario in SCENARIOS.items():
            box = Sandbox(Path(tmp) / name)
            box.setup()
            started = time.perf_counter()
            scenario(box)
            rows.append({"scenario": name, "checks": box.checks, "scans": box.scans,
                         "passed": sum(c["ok"] for c in box.checks), "failed": sum(not c["ok"] for c in box.checks),
                         "traces": sum(len(s["traces"]) for s in box.scans), "processes": len(box.run_seconds),
                         "seconds": round(time.perf_counter() - started, 1)})
    return {"scenarios": len(rows), "checks_failed": sum(r["failed"] for r in rows),
            "traces": sum(r["traces"] for r in rows), "scans": sum(len(r["scans"]) for r in rows), "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = run_suite()
    print(f"{'scenario':<26} {'checks':>9} {'scans':>5} {'traces':>6} {'procs':>5} {'s':>6}")
    for r in report["rows"]:
        print(f"{r['scenario']:<26} {r['passed']:>4}/{r['passed'] + r['failed']:<4} {len(r['scans']):>5} {r['traces']:>6} "
              f"{r['processes']:>5} {r['seconds']:>6}")
        for c in r["checks"]:
            if not c["ok"]:
                print(f"  FAILED {c['check']}: {c.get('detail', '')[:300]}")
        for s in r["scans"]:
            for t in s["traces"][:5]:
                print(f"  TRACE {s['step']}: {t}")
    print(f"total: {report['scenarios']} scenarios, {report['checks_failed']} failed checks, {report['traces']} traces "
          f"in {report['scans']} byte scans of $DSV4_HOME")
    if args.out:
        report.update(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=platform.platform(),
                      python=platform.python_version())
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["traces"] == 0 and report["checks_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
