"""Generated tool calls (>= 400) through Toolbox.prepare + Toolbox.execute on a real git repository, and a few
through the real headless CLI: no exception escapes, every result is a ToolResult, nothing leaves the repo."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from dsv4.agent.report import HeadlessReport
from dsv4.tools.base import ToolError, ToolResult
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace

from ..conftest import run_cli

CALLS = 480

PATHS = ["", ".", "..", "../x", "../../etc/passwd", "/etc/passwd", "/", "a\0b", "x" * 300, "d/" + "é" * 200,
         "bad\ud800name", "\udfff", ".git/config", ".GIT/HEAD", ".git/hooks/pre-commit", "gitlink/config", ".dsv4/x",
         "calc", "calc/", "calc/__init__.py", "calc/../calc/__init__.py", "a.txt", "a.txt/x", "a.txt/x/y", "folder",
         "folder/", "out/data.txt", "out/new.txt", "loop", "loop/x", "missing/deep/new.py", "new.txt", "~", "$HOME",
         "*", "**/*.py", "\n", " ", "tests/test_calc.py", "con", "-rf", "a" * 5000, "./././a.txt", "calc//__init__.py"]
TEXTS = ["", "x", "hello\n", "\0\0\0", "bad \ud800 text", "é" * 100, "line\r\nline\r\n", "\t" * 50, "[core]\n",
         "def add(a, b):", "    return a - b", "return a", "x" * 100_000, "\n" * 1000, "🙂" * 10, "\x1b[31mred"]
PATTERNS = ["(a+)+$", "(", "[", "(?<=x)y", r"\1", "def", "", ".*", "é", "\0", "a{1000000}", "(?P<n>x)(?P=n)",
            "[z-a]", "\ud800", "x" * 10_000, "(?i)ADD", "^$"]
COMMANDS = ["echo hi", "exit 3", "true", "\0", "printf '\\377\\376'", "echo \ud800", "", "cat a.txt", "sleep 0",
            "echo $DEEPSEEK_API_KEY", "ls .git"]
MARK = "MARKER"  # replaced by a path in the test's tmp_path: a file there means an injected command ran
SELECTORS = ["", "-x", "-k add", f"; touch {MARK}", f"$(touch {MARK})", "-p evil",
             "tests/test_calc.py::test_mul", "../", "/etc", "'", "\0", "--rootdir=/", "-k", "a" * 300]
GIT_ARGS = [[], ["--stat"], ["--no-index", "/etc/hostname", "x"], ["-c", "core.pager=sh"], [f"--output={MARK}"],
            ["HEAD"], ["HEAD:../../etc/passwd"], ["-n", "1"], ["\0"], ["\ud800"], ["--", "/etc"], ["-n"], ["-5"]]
WRONG = [None, 1, -1, 1.5, True, [], {}, ["x"], {"a": 1}, 10**30, "1e9"]


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _pick(rng: random.Random, pool: list[Any]) -> Any:
    return rng.choice(WRONG) if rng.random() < 0.05 else rng.choice(pool)


def _patch(rng: random.Random) -> str:
    path = rng.choice(PATHS)
    kind = rng.choice(["Add", "Update", "Delete", "Move", "garbage", "unified"])
    if kind == "Add":
        return f"*** Begin Patch\n*** Add File: {path}\n+{rng.choice(TEXTS)}\n*** End Patch"
    if kind == "Update":
        return f"*** Begin Patch\n*** Update File: {path}\n@@\n-{rng.choice(TEXTS)}\n+{rng.choice(TEXTS)}\n*** End Patch"
    if kind == "Delete":
        return f"*** Begin Patch\n*** Delete File: {path}\n*** End Patch"
    if kind == "Move":
        return f"*** Begin Patch\n*** Update File: a.txt\n*** Move to: {path}\n*** End Patch"
    if kind == "unified":
        return f"--- a/{path}\n+++ b/{path}\n@@ -1,1 +1,1 @@\n-{rng.choice(TEXTS)}\n+y\n"
    return rng.choice(TEXTS) + "*** Begin Patch\n*** Update File:"


def generated_calls(seed: int, count: int, marker: Path) -> list[tuple[str, str]]:
    """(tool name, raw JSON arguments) pairs, as a model might send them at its worst."""
    rng = random.Random(seed)
    makers = {
        "read_file": lambda: {"path": _pick(rng, PATHS), "offset": _pick(rng, [None, 1, 0, -5, 10**9]),
                              "limit": _pick(rng, [None, 1, 0, 10**12])},
        "list_files": lambda: {"path": _pick(rng, PATHS), "glob": _pick(rng, [None, "*", "**/*.py", "[", "\0"])},
        "search": lambda: {"pattern": _pick(rng, PATTERNS), "path": _pick(rng, PATHS), "glob": _pick(rng, [None, "*.py", "["])},
        "edit_file": lambda: {"path": _pick(rng, PATHS), "old_string": _pick(rng, TEXTS), "new_string": _pick(rng, TEXTS),
                              "replace_all": _pick(rng, [True, False])},
        "multi_edit": lambda: {"path": _pick(rng, PATHS), "edits": _pick(rng, [
            [], [{"old_string": rng.choice(TEXTS), "new_string": rng.choice(TEXTS)}] * rng.randint(1, 3), "x"])},
        "write_file": lambda: {"path": _pick(rng, PATHS), "content": _pick(rng, TEXTS)},
        "apply_patch": lambda: {"patch": _pick(rng, [_patch(rng)])},
        "run_tests": lambda: {"args": _pick(rng, SELECTORS)},
        "bash": lambda: {"command": _pick(rng, COMMANDS), "timeout_s": _pick(rng, [5, 0, -1, 1e9, 0.001])},
        "git": lambda: {"subcommand": _pick(rng, ["status", "diff", "log", "show", "push", "-c", "\0", ""]),
                        "args": _pick(rng, GIT_ARGS)},
    }
    weights = {"run_tests": 0.3, "bash": 0.5}
    names = list(makers)
    calls: list[tuple[str, str]] = []
    for _ in range(count):
        name = rng.choices(names + ["no_such_tool"], [weights.get(n, 1.0) for n in names] + [0.2])[0]
        shape = rng.random()
        if name == "no_such_tool" or shape < 0.05:
            raw = rng.choice(["", "null", "[]", '"text"', "{", "{\"path\": ", "not json", "[" * 100_000, "{\"a\":" * 3000,
                              "\"\\ud800\"", "{\"path\": \"\\ud800\"}", "1e999999", "{\"path\": NaN}"])
        else:
            arguments = makers[name]() if name in makers else {}
            if shape < 0.12:
                arguments[rng.choice(["extra", "path", "args"])] = _deep(rng.choice([5, 50, 500]))
            if shape > 0.95:
                arguments.pop(next(iter(arguments)), None)
            try:
                raw = json.dumps(arguments)
            except (ValueError, RecursionError):
                raw = "{}"
        calls.append((name, raw.replace(MARK, str(marker))))
    return calls


@pytest.fixture
def fuzz_repo(calc_repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("outside\n")
    (calc_repo / "a.txt").write_text("hello\n")
    (calc_repo / "folder").mkdir()
    os.symlink(outside, calc_repo / "out")
    os.symlink(calc_repo / "loop", calc_repo / "loop")
    os.symlink(".git", calc_repo / "gitlink")
    return calc_repo, outside


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generated_tool_calls_never_crash_and_never_escape(fuzz_repo, tmp_path):
    root, outside = fuzz_repo
    git_before, outside_before = snapshot(root / ".git"), snapshot(outside)
    toolbox = Toolbox(Workspace(root))
    crashes: list[str] = []
    internal: list[str] = []
    refused = answered = 0
    marker = tmp_path / "pwned"
    for name, raw in generated_calls(seed=20261201, count=CALLS, marker=marker):
        try:
            tool, args = toolbox.prepare(name, raw)
        except ToolError:
            refused += 1
            continue
        except Exception as exc:  # what the fuzz is for: anything here is a crash of the run
            crashes.append(f"prepare {name} {raw[:80]!r}: {type(exc).__name__}: {exc}")
            continue
        try:
            result = toolbox.execute(tool, args)
        except Exception as exc:
            crashes.append(f"execute {name} {raw[:80]!r}: {type(exc).__name__}: {exc}")
            continue
        assert isinstance(result, ToolResult)
        answered += 1
        if "internal_error" in result.data:
            internal.append(f"{name} {raw[:80]!r}: {result.text[:200]}")
    assert crashes == [] and internal == [], "\n".join(crashes + internal)
    assert refused + answered == CALLS and refused > 50 and answered > 200
    assert snapshot(root / ".git") == git_before and snapshot(outside) == outside_before
    assert not marker.exists()


def headless_calls(marker: Path) -> list[dict[str, Any]]:
    return json.loads(json.dumps(HEADLESS_CALLS).replace(MARK, str(marker)))


HEADLESS_CALLS: list[dict[str, Any]] = [
    {"name": "write_file", "arguments": '{"path": "bad\\ud800.txt", "content": "x"}'},
    {"name": "write_file", "arguments": {"path": "a.txt/x", "content": "x"}},
    {"name": "write_file", "arguments": {"path": ".git/config", "content": f"[core]\n\tfsmonitor = touch {MARK}\n"}},
    {"name": "read_file", "arguments": {"path": "a\u0000b"}},
    {"name": "read_file", "arguments": {"path": "x" * 300}},
    {"name": "apply_patch", "arguments": {"patch": "*** Begin Patch\n*** Update File: calc\n-x\n+y\n*** End Patch"}},
    {"name": "search", "arguments": {"pattern": "(a+)+$"}},
    {"name": "run_tests", "arguments": {"args": f"; touch {MARK}"}},
    {"name": "list_files", "arguments": '[' * 50_000},
    {"name": "edit_file", "arguments": '{"path": ' + '[' * 5000 + ']' * 5000 + '}'},
    {"name": "git", "arguments": {"subcommand": "diff", "args": ["--no-index", "/etc/hostname", "x"]}},
    {"name": "git", "arguments": {"subcommand": "status"}},
]


@pytest.mark.parametrize("output_format", ["json", "stream-json"])
def test_headless_run_with_hostile_tool_calls_reports_json_without_traceback(fuzz_repo, write_script, output_format,
                                                                             tmp_path):
    root, outside = fuzz_repo
    marker = tmp_path / "pwned"
    script = [{"content": "", "tool_calls": [call]} for call in headless_calls(marker)] + [{"content": "gave up"}]
    proc = run_cli(["run", "--headless", "try everything", "--backend", "scripted", "--script",
                    str(write_script(script)), "--output-format", output_format, "--max-steps", "40"], root)
    assert "Traceback" not in proc.stderr, proc.stderr
    if output_format == "stream-json":
        events = [json.loads(line) for line in proc.stdout.splitlines()]  # every line one JSON event
        assert events[-1]["type"] == "result"
        report = HeadlessReport.model_validate(events[-1]["report"])
    else:
        report = HeadlessReport.model_validate_json(proc.stdout)  # stdout is exactly one JSON document
    assert report.status in ("not_done", "done") and report.steps >= len(HEADLESS_CALLS)
    assert not marker.exists() and snapshot(outside) == {"data.txt": b"outside\n"}
    assert "fsmonitor" not in (root / ".git" / "config").read_text()
