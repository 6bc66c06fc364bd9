"""`dsv4-code run --headless`: the agent without a terminal, for CI. Never reads stdin unless the task is `-`,
never waits for an approval, and always ends with a report and an exit code:
0 done (and tests pass where a test command exists), 1 not done / tests failing / action denied / budget,
2 usage or config error, 3 backend failure. It drives the session only through `AgentSession`.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from dsv4 import __version__

from ...tools.process import cap_output
from ...tools.workspace import atomic_write
from ...tools.run_tests import run_test_command
from ..config import Settings
from ..events import AgentEvent
from ..gitdiff import diff_since, head_commit, working_tree_snapshot
from ..redact import redact_data
from ..repo import Repo
from ..report import ContextReport, DeniedAction, HeadlessReport, InitEvent, ResultEvent, TestsReport, UsageReport
from ..session import AgentSession, agent_config, session_policy, session_test_command
from .errors import EXIT_BACKEND, EXIT_DONE, EXIT_NOT_DONE
from .progress import HeadlessProgress


def run_headless(repo: Repo, settings: Settings, task: str, *, output_format: str, patch_out: Path | None,
                 max_steps: int | None, max_tokens: int | None, timeout_s: float | None, allow_shell: bool,
                 resume_id: str | None, out: TextIO = sys.stdout) -> int:
    started = time.monotonic()
    base_commit = head_commit(repo.root)
    base_tree = working_tree_snapshot(repo.root)  # the report holds only what this run changes

    progress = HeadlessProgress() if output_format == "text" else None

    def emit(event: AgentEvent | InitEvent) -> None:
        if output_format == "stream-json":
            # ensure_ascii: a lone surrogate from a model becomes a \u escape instead of failing the write
            out.write(json.dumps(redact_data(event.model_dump(mode="json"))) + "\n")
            out.flush()
        elif progress is not None:
            progress.show(redact_data(event.model_dump(mode="json")))

    policy = session_policy(settings, headless=True, allow_shell=allow_shell,
                            test_command=session_test_command(repo, settings))
    config = agent_config(settings, max_steps=max_steps, max_tokens=max_tokens, timeout_s=timeout_s)
    session = AgentSession.open(repo, settings, policy, config, resume_id=resume_id, emit=emit)
    for warning in session.warnings:  # e.g. an MCP server that did not start: the run goes on without it
        print(f"dsv4-code: warning: {warning}", file=sys.stderr)
    emit(InitEvent(version=__version__, session_id=session.session_id, model=session.model_id,
                   tools=session.tool_names, permission_mode=session.permission_mode, base_commit=base_commit))
    with stop_on_signals(session) as stopped_by:
        result = session.run_turn(task)

    tests = TestsReport(command=session.test_command)
    if session.test_command and result.status != "backend_error" and not stopped_by:
        outcome = run_test_command(session.test_command, repo.root, secret_names=session.secret_names)
        tests = TestsReport(command=outcome.command, ran=True, ok=outcome.ok, passed=outcome.passed,
                            failed=outcome.failed, exit_code=outcome.exit_code, outcome=outcome.outcome,
                            environment=outcome.environment, output_tail=cap_output(outcome.output, 4000))
    patch, files = diff_since(repo.root, base_tree, exclude=[patch_out] if patch_out is not None else [])
    if patch_out is not None:
        atomic_write(patch_out, patch.encode("utf-8"))

    error_kind: str | None = None
    if result.status == "backend_error":
        status, code, error_kind = "backend_error", EXIT_BACKEND, "backend"
    elif result.status in ("max_steps", "max_tokens", "timeout"):
        status, code, error_kind = "budget_exhausted", EXIT_NOT_DONE, "budget"
    elif result.denied:
        status, code, error_kind = "not_done", EXIT_NOT_DONE, "denied"
    elif tests.ran and not tests.ok:
        status, code, error_kind = "not_done", EXIT_NOT_DONE, "tests" if tests.outcome != "could_not_run" else "tests_could_not_run"
    elif result.status == "cancelled":
        status, code, error_kind = "not_done", EXIT_NOT_DONE, "cancelled"
    else:
        status, code = "done", EXIT_DONE
    usage = result.usage
    reading = session.last_context or session.context()
    kv = session.kv_report(wait=True)  # the turn's snapshot is saved before the report counts it
    report = HeadlessReport(
        status=status, exit_code=code, summary=result.summary, patch=patch, files_changed=files, tests=tests,
        usage=UsageReport(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                          cached_prompt_tokens=usage.cached_prompt_tokens, total_tokens=usage.total_tokens,
                          estimated=usage.estimated),
        session_id=session.session_id, denied_actions=[DeniedAction(**d) for d in result.denied],
        budget_exhausted=result.status if status == "budget_exhausted" else None, steps=result.steps,
        malformed_tool_calls=result.malformed_calls, model=session.model_id,
        error=result.error or (f"stopped by {stopped_by[0]}: the turn was cancelled and the tests not run" if stopped_by else None),
        context=ContextReport(window=reading.window, used=reading.used, compactions=result.compactions),
        duration_s=round(time.monotonic() - started, 3), turns=session.turn, error_kind=error_kind,
        kv=kv[0] if kv is not None else None, timing=kv[1] if kv is not None else None,
    )
    session.log("headless_report", report.model_dump(exclude={"patch"}) | {"wall_s": round(time.monotonic() - started, 3)})
    session.close(status="done" if code == EXIT_DONE else "stopped")
    print_report(report, output_format, out)
    return code


@contextmanager
def stop_on_signals(session: AgentSession) -> Iterator[list[str]]:
    """SIGTERM (a CI job's time limit, `timeout`, `kill`) and Ctrl+C cancel the turn as Esc does, so the run still
    ends with its report, its patch and a resumable session instead of vanishing mid-step; a second signal
    interrupts at once. Yields the names of the signals received."""
    received: list[str] = []

    def stop(signum: int, _frame: object) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signal.Signals(signum).name)
        # from another thread: the handler may have interrupted the main thread inside a lock cancel() takes
        threading.Thread(target=session.cancel, name="dsv4-stop", daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def print_report(report: HeadlessReport, output_format: str, out: TextIO = sys.stdout) -> None:
    report = HeadlessReport.model_validate(redact_data(report.model_dump(mode="json")))
    if output_format == "json":
        out.write(report.model_dump_json(indent=2) + "\n")
    elif output_format == "stream-json":
        out.write(ResultEvent(report=report).model_dump_json() + "\n")
    else:
        lines = [f"status: {report.status} (exit {report.exit_code})", f"session: {report.session_id}",
                 f"model: {report.model}", "", report.summary or "(no summary)", ""]
        if report.patch:
            lines += [report.patch.rstrip("\n"), ""]
        else:
            lines.append("no changes")
        if report.tests.outcome == "could_not_run":
            lines.append(f"tests: could not run ({report.tests.command}; environment: {report.tests.environment})")
        elif report.tests.ran:
            counts = f"{report.tests.passed} passed, {report.tests.failed} failed" if report.tests.passed is not None else f"exit {report.tests.exit_code}"
            lines.append(f"tests: {'passed' if report.tests.ok else 'FAILED'}: {counts} ({report.tests.command})")
        else:
            lines.append("tests: no test command found")
        for denied in report.denied_actions:
            lines.append(f"denied: {denied.tool}: {denied.reason}")
        if report.error:
            lines.append(f"error: {report.error}")
        u = report.usage
        lines.append(f"tokens: {u.prompt_tokens} prompt ({u.cached_prompt_tokens} cached), {u.completion_tokens} completion"
                     + (" (estimated: the server reported no usage)" if u.estimated else ""))
        if report.context is not None:
            c = report.context
            lines.append(f"context: {c.used} of {c.window} tokens, {c.compactions} compaction{'s' * (c.compactions != 1)}")
        if report.kv is not None and report.kv.restored_tokens:
            lines.append(f"kv: {report.kv.restored_tokens} prompt tokens restored ({report.kv.tier}), "
                         f"{report.kv.prefill_tokens} prefilled")
        out.write("\n".join(lines) + "\n")
    out.flush()
