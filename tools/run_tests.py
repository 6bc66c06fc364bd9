"""`run_tests`: the repository's test command as an argv (never a shell), in the repository's environment,
with `args` checked as test selectors; the outcome is passed, failed, or could not run."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from .base import Effect, TestRun, ToolError, ToolResult
from .process import CommandNotRun, cap_output, run_command
from .test_env import TestCommandError, TestRunner, detect_test_command, detect_test_runner, parse_test_command
from .test_selectors import SelectorError, check_selectors
from .workspace import PathEscape, Workspace

__all__ = ["RunTests", "TestOutcome", "detect_test_command", "parse_counts", "run_test_command", "run_tests"]

TEST_TIMEOUT_S = 900
FAILURE_OUTPUT_CAP = 12_000
TEST_ENV = {"CI": "1", "NO_COLOR": "1", "PY_COLORS": "0"}
Outcome = Literal["passed", "failed", "could_not_run"]
# pytest's own exit codes for "the tests did not run" (collection errors, internal error, usage, none found).
PYTEST_NOT_RUN = {2: "collection failed or the run was interrupted", 3: "pytest hit an internal error",
                  4: "pytest was called wrongly", 5: "no tests were collected"}
_MISSING = re.compile(r"No module named (pytest|'?pytest'?)\b|command not found|No such file or directory: '[^']*pytest")


@dataclass
class TestOutcome:
    __test__ = False  # not a pytest test class
    command: str
    exit_code: int
    passed: int | None
    failed: int | None
    output: str
    timed_out: bool
    environment: str = ""
    outcome: Outcome = "failed"
    reason: str | None = None  # why the tests could not run, or what stopped them

    @property
    def ok(self) -> bool:
        return self.outcome == "passed"


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


def classify(runner: TestRunner, exit_code: int, output: str) -> tuple[Outcome, str | None]:
    if exit_code == 0:
        return "passed", None
    missing = _MISSING.search(output)
    if exit_code == 127 or (missing and exit_code in (1, 2)):
        return "could_not_run", f"the test runner is missing in {runner.environment} ({missing.group(0) if missing else 'exit code 127'})"
    if runner.kind == "pytest" and exit_code in PYTEST_NOT_RUN:
        first_error = re.search(r"^E\s+(.+)$|^ERROR:? (.+)$", output, re.M)
        detail = f": {(first_error.group(1) or first_error.group(2)).strip()}" if first_error else ""
        return "could_not_run", PYTEST_NOT_RUN[exit_code] + detail
    return "failed", None


def run_tests(runner: TestRunner, root: Path, selectors: list[str] | None = None, *,
              secret_names: Iterable[str] = (), cancel: threading.Event | None = None,
              deadline: float | None = None) -> TestOutcome:
    argv = list(runner.argv)
    if "-q" in argv:  # a second -q would hide pytest's summary line, and with it the counts
        selectors = [s for s in selectors or [] if s not in ("-q", "--quiet")]
    if selectors and runner.kind == "go" and argv[-1] == "./..." and any(not s.startswith("-") for s in selectors):
        argv.pop()  # packages given: they replace the whole-module default
    argv += (["--", *selectors] if runner.kind == "npm" and selectors else (selectors or []))
    command = TestRunner(argv, runner.environment, runner.kind, runner.env).command
    try:
        result = run_command(argv, root, TEST_TIMEOUT_S, env={**TEST_ENV, **runner.env}, secret_names=secret_names,
                             cancel=cancel, deadline=deadline)
    except CommandNotRun as exc:
        return TestOutcome(command, 127, None, None, str(exc), False, runner.environment, "could_not_run",
                           f"the test runner is missing: {exc}")
    passed, failed = parse_counts(result.output)
    if result.cancelled or result.timed_out:
        outcome: Outcome = "could_not_run" if result.cancelled else "failed"
        reason = "cancelled" if result.cancelled else f"timed out (stopped after {TEST_TIMEOUT_S} s or the run's deadline)"
    else:
        outcome, reason = classify(runner, result.exit_code, result.output)
    return TestOutcome(command, result.exit_code, passed, failed, result.output, result.timed_out,
                       runner.environment, outcome, reason)


def run_test_command(command: str, root: Path, extra_args: str = "", secret_names: Iterable[str] = ()) -> TestOutcome:
    """Run a test command string (configured or detected) without a shell; `extra_args` are selectors."""
    detected = detect_test_runner(root)
    runner = detected if detected is not None and detected.command == command else parse_test_command(command)
    selectors = check_selectors(extra_args, runner.kind, Workspace(root, state_dirs=[]).resolve) if extra_args else []
    return run_tests(runner, root, selectors, secret_names=secret_names)


class RunTestsArgs(BaseModel):
    args: str = Field(default="", description="Test selectors: files or node ids inside the repository, "
                                              "'-k EXPR', '-x', '-q' (pytest); a few runner options. Not a command line.")


class RunTests:
    name: ClassVar[str] = "run_tests"
    description: ClassVar[str] = ("Run the repository's test suite (or part of it, by test selectors) in the "
                                  "repository's environment and report pass/fail counts and failures.")
    effects = frozenset({Effect.RUNS_COMMANDS, Effect.RUNS_TESTS})
    Args = RunTestsArgs

    def run(self, args: RunTestsArgs, workspace: Workspace) -> ToolResult:
        detected = detect_test_runner(workspace.root)
        try:
            runner = detected if workspace.test_command in (None, detected.command if detected else None) \
                else parse_test_command(workspace.test_command or "")
        except TestCommandError as exc:
            raise ToolError(str(exc)) from None
        if runner is None:
            raise ToolError("no test command found (no pytest/npm/cargo/go setup); set test_command in .dsv4/config.toml")
        try:
            selectors = check_selectors(args.args, runner.kind, workspace.resolve)
        except (SelectorError, PathEscape) as exc:
            raise ToolError(f"tests not run: {exc}") from None
        outcome = run_tests(runner, workspace.root, selectors, secret_names=workspace.secret_names,
                            cancel=workspace.cancel_event, deadline=workspace.deadline)
        return tests_result(outcome)


def tests_result(outcome: TestOutcome) -> ToolResult:
    where = f"({outcome.command}; environment: {outcome.environment})"
    counts = f"{outcome.passed} passed, {outcome.failed} failed" if outcome.passed is not None \
        else f"exit code {outcome.exit_code}"
    if outcome.outcome == "could_not_run":
        head = f"tests could not run: {outcome.reason} {where}"
    elif outcome.ok:
        head = f"tests passed: {counts} {where}"
    else:
        head = f"tests {'timed out' if outcome.timed_out else 'failed'}: {counts} {where}"
    detail = "" if outcome.ok else "\n" + cap_output(outcome.output, FAILURE_OUTPUT_CAP)
    return ToolResult(
        text=head + detail, is_error=not outcome.ok,
        data={"command": outcome.command, "exit_code": outcome.exit_code, "passed": outcome.passed,
              "failed": outcome.failed, "ok": outcome.ok, "outcome": outcome.outcome,
              "environment": outcome.environment, "reason": outcome.reason},
        tests=TestRun(command=outcome.command, exit_code=outcome.exit_code, passed=outcome.passed,
                      failed=outcome.failed, ok=outcome.ok, outcome=outcome.outcome, environment=outcome.environment,
                      reason=outcome.reason),
    )
