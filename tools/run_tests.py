from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

from .base import Effect, TestRun, ToolError, ToolResult
from .process import cap_output, run_command
from .workspace import Workspace

TEST_TIMEOUT_S = 900
FAILURE_OUTPUT_CAP = 12_000


@dataclass
class TestOutcome:
    command: str
    exit_code: int
    passed: int | None
    failed: int | None
    output: str
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def detect_test_command(root: Path) -> str | None:
    """The command a developer would type in this repo; None when there is no recognisable test setup."""
    if (root / "pyproject.toml").exists() or (root / "pytest.ini").exists() or (root / "setup.cfg").exists() \
            or (root / "tests").is_dir() or any(root.glob("test_*.py")):
        venv_python = root / ".venv" / "bin" / "python"
        python = venv_python if venv_python.exists() else Path(sys.executable)
        return f"{shlex.quote(str(python))} -m pytest -q"
    package_json = root / "package.json"
    if package_json.exists():
        scripts = json.loads(package_json.read_text(encoding="utf-8")).get("scripts", {})
        if "test" in scripts:
            return "npm test --silent"
    if (root / "Cargo.toml").exists():
        return "cargo test"
    if (root / "go.mod").exists():
        return "go test ./..."
    return None


_COUNT = re.compile(r"(\d+) (passed|failed|errors?)")


def parse_counts(output: str) -> tuple[int | None, int | None]:
    """pytest, jest/node, cargo and go summaries, read loosely: (passed, failed) or (None, None)."""
    passed = failed = None
    for number, word in _COUNT.findall(output):
        if word == "passed":
            passed = (passed or 0) + int(number)
        else:
            failed = (failed or 0) + int(number)
    if passed is None and failed is None:
        jest = re.search(r"Tests:\s+(?:(\d+) failed, )?(?:\d+ skipped, )?(\d+) passed", output)
        if jest:
            failed, passed = int(jest.group(1) or 0), int(jest.group(2))
        cargo = re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", output)
        if cargo:
            passed, failed = sum(int(p) for p, _ in cargo), sum(int(f) for _, f in cargo)
        go_fail = len(re.findall(r"^--- FAIL", output, re.M))
        go_ok = len(re.findall(r"^ok\s", output, re.M))
        if passed is None and (go_fail or go_ok):
            passed, failed = go_ok, go_fail
    if passed is not None and failed is None:
        failed = 0
    if failed is not None and passed is None:
        passed = 0
    return passed, failed


def run_test_command(command: str, root: Path, extra_args: str = "") -> TestOutcome:
    full = f"{command} {extra_args}".strip()
    outcome = run_command(full, root, TEST_TIMEOUT_S, env={"CI": "1", "NO_COLOR": "1", "PY_COLORS": "0"})
    passed, failed = parse_counts(outcome.output)
    return TestOutcome(command=full, exit_code=outcome.exit_code, passed=passed, failed=failed,
                       output=outcome.output, timed_out=outcome.timed_out)


class RunTestsArgs(BaseModel):
    args: str = Field(default="", description="Extra arguments for the test command, e.g. a test file or -k filter")


class RunTests:
    name: ClassVar[str] = "run_tests"
    description: ClassVar[str] = "Run the repository's test suite (or part of it) and report pass/fail counts and failures."
    effects = frozenset({Effect.RUNS_COMMANDS, Effect.RUNS_TESTS})
    Args = RunTestsArgs

    def run(self, args: RunTestsArgs, workspace: Workspace) -> ToolResult:
        command = workspace.test_command or detect_test_command(workspace.root)
        if command is None:
            raise ToolError("no test command found (no pytest/npm/cargo/go setup); set test_command in .dsv4/config.toml")
        outcome = run_test_command(command, workspace.root, args.args)
        status = "passed" if outcome.ok else ("timed out" if outcome.timed_out else "failed")
        counts = f"{outcome.passed} passed, {outcome.failed} failed" if outcome.passed is not None else f"exit code {outcome.exit_code}"
        detail = "" if outcome.ok else "\n" + cap_output(outcome.output, FAILURE_OUTPUT_CAP)
        return ToolResult(
            text=f"tests {status}: {counts} ({outcome.command}){detail}",
            is_error=not outcome.ok,
            data={"command": outcome.command, "exit_code": outcome.exit_code, "passed": outcome.passed,
                  "failed": outcome.failed, "ok": outcome.ok},
            tests=TestRun(command=outcome.command, exit_code=outcome.exit_code, passed=outcome.passed,
                          failed=outcome.failed, ok=outcome.ok),
        )
