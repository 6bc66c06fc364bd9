"""Approvals: the diff an edit would make before it is made, the exact command, always-allow rules that are
logged and restored on resume, and Esc that stops a turn."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path


from dsv4.agent.sessions import SessionStore
from dsv4.tui.screens.approval import ApprovalScreen
from dsv4.tui.widgets.tool_card import ToolCard
from textual.widgets import Static

from ..conftest import FIX_SCRIPT
from .helpers import chat, make_app, ready, send, settle, wait_until


def bash_call(command: str) -> dict:
    return {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": command}}]}


def shown_detail(dialog: ApprovalScreen) -> str:
    """The text the dialog shows for what the call would do."""
    return str(dialog.query_one("#detail-body", Static).render())


async def approval(app, pilot, after: ApprovalScreen | None = None) -> ApprovalScreen:
    """The approval dialog once it shows what the call would do; `after`: a dialog just answered, which may still
    be on screen for a moment (this waits for the next one)."""
    def shown() -> bool:
        screen = app.screen
        return isinstance(screen, ApprovalScreen) and screen is not after and bool(screen.query("#detail-body"))

    await wait_until(pilot, shown, "the approval dialog")
    return app.screen


async def test_an_edit_is_approved_after_its_diff_is_shown_and_not_written_before(calc_repo):
    app = make_app(calc_repo, [FIX_SCRIPT[1], {"content": "done"}], mode="ask")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "fix add")
        dialog = await approval(app, pilot)
        assert dialog.tool_name == "edit_file"
        assert "-    return a - b" in dialog.preview.diff and "+    return a + b" in dialog.preview.diff
        assert "-    return a - b" in shown_detail(dialog) and "+    return a + b" in shown_detail(dialog)
        assert "a - b" in (calc_repo / "calc" / "__init__.py").read_text()  # the preview wrote nothing
        assert chat(app).query_one(ToolCard).state == "waiting"
        await pilot.press("y")
        await wait_until(pilot, lambda: not chat(app).busy, "the turn to finish")
        await settle(app, pilot)
        assert chat(app).query_one(ToolCard).state == "ok"
    assert "a + b" in (calc_repo / "calc" / "__init__.py").read_text()


async def test_a_denied_command_shows_the_exact_command_and_does_not_run(calc_repo):
    app = make_app(calc_repo, [bash_call("touch x.txt"), {"content": "ok"}], mode="ask")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "go")
        dialog = await approval(app, pilot)
        assert dialog.preview is None and "$ touch x.txt" in shown_detail(dialog)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not chat(app).busy, "the turn to finish")
        assert chat(app).query_one(ToolCard).state == "denied"
    assert not (calc_repo / "x.txt").exists()


async def test_always_allow_runs_the_second_command_without_asking_and_survives_resume(calc_repo):
    script = [bash_call("git status --short"), bash_call("git status"), {"content": "both ran"},
              bash_call("git status -s"), {"content": "third ran"}]
    app = make_app(calc_repo, script, mode="ask")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "status twice")
        dialog = await approval(app, pilot)
        assert dialog.rule_text == "bash: git status*"
        await pilot.press("a")
        await wait_until(pilot, lambda: not chat(app).busy, "the turn to finish")
        await settle(app, pilot)
        assert [c.state for c in chat(app).query(ToolCard)] == ["ok", "ok"]  # the second was not asked
        session_id = chat(app).session.session_id
    rules = SessionStore.open_default().events(session_id, "approval_rule")
    assert [r["payload"] for r in rules] == [{"tool": "bash", "pattern": "git status*"}]

    resumed = make_app(calc_repo, script[3:], mode="ask", resume_id=session_id)
    async with resumed.run_test(size=(100, 30)) as pilot:
        await ready(resumed, pilot)
        await send(resumed, pilot, "once more")
        await wait_until(pilot, lambda: not chat(resumed).busy, "the turn to finish")
        await settle(resumed, pilot)
        assert not isinstance(resumed.screen, ApprovalScreen)
        assert chat(resumed).query(ToolCard)[-1].state == "ok"


async def test_a_rule_does_not_cover_a_chained_command(calc_repo):
    app = make_app(calc_repo, [bash_call("git status"), bash_call("git status; touch owned.txt"), {"content": "x"}],
                   mode="ask")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await send(app, pilot, "go")
        first = await approval(app, pilot)
        await pilot.press("a")
        dialog = await approval(app, pilot, after=first)  # asked again: the rule does not allow "; touch"
        assert "touch owned.txt" in shown_detail(dialog)
        await pilot.press("n")
        await wait_until(pilot, lambda: not chat(app).busy, "the turn to finish")
    assert not (calc_repo / "owned.txt").exists()


def kill_marked_commands(marker: str) -> None:
    """Kill the process groups of the commands this test started (found by a unique marker in their command
    line), so a test that fails does not wait 30 s for its `sleep` in teardown."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                os.killpg(os.getpgid(int(proc.name)), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


async def test_escape_during_sleep_30_returns_promptly(calc_repo):
    marker = f"esc-test-{uuid.uuid4().hex}"
    app = make_app(calc_repo, [{"content": "", "tool_calls": [{"name": "bash", "arguments": {
        "command": f"sleep 30 && echo {marker}", "timeout_s": 60}}]}, {"content": "never"}])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        await send(app, pilot, "sleep")
        await wait_until(pilot, lambda: bool(screen.query(ToolCard)) and screen.query_one(ToolCard).state == "running",
                         "the command to start")
        await pilot.press("escape")
        # A bounded number of short polls (about 3 s), not a wall-clock assertion: the turn must end long before
        # the 30 s command would have.
        for _ in range(300):
            if not screen.busy:
                break
            await pilot.pause(0.01)
        stopped = not screen.busy
        kill_marked_commands(marker)
        await wait_until(pilot, lambda: not screen.busy, "the turn to end")
        assert stopped
