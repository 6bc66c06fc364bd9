"""SVG snapshots of the main states at 80x24 and 160x48 (`--snapshot-update` rewrites them). Values that
depend on token estimates or the session id are set to fixed ones before the picture is taken."""

from __future__ import annotations

import pytest

from dsv4.tui.screens.approval import ApprovalScreen
from dsv4.tui.widgets.prompt_editor import PromptEditor
from dsv4.tui.widgets.status_bar import StatusBar

from ..conftest import FIX_SCRIPT
from .helpers import chat, make_app, ready, send, turn, wait_until

@pytest.fixture(autouse=True)
def no_durations(monkeypatch):
    """Tool durations change from run to run; the pictures leave them out."""
    monkeypatch.setattr("dsv4.tui.widgets.tool_card.SLOW_S", float("inf"))


SIZES = [(80, 24), (160, 48)]
REPLY = ("Fixed `add()`: it **subtracted** instead of adding.\n\n"
         "- `calc/__init__.py`: `a - b` → `a + b`\n- both tests pass\n\n```python\ndef add(a, b):\n    return a + b\n```")


def fixed_status(app) -> None:
    chat(app).query_one(PromptEditor).cursor_blink = False  # a blinking cursor would differ from run to run
    status = chat(app).query_one(StatusBar)
    status.session_id = "SESSION"
    status.context_used, status.context_window = 12_345, 131_072
    status.prompt_tokens, status.cached_tokens, status.cost = 0, 0, None


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_conversation_after_a_fix(calc_repo, snap_compare, size):
    script = [FIX_SCRIPT[0], FIX_SCRIPT[1], FIX_SCRIPT[2], {"content": REPLY}]
    app = make_app(calc_repo, script, test_command="python -m pytest -q")

    async def run_turn(pilot):
        await ready(app, pilot)
        await turn(app, pilot, "fix the failing test")
        fixed_status(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_turn)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_approval_of_an_edit_shows_its_diff(calc_repo, snap_compare, size):
    app = make_app(calc_repo, [FIX_SCRIPT[1], {"content": "done"}], mode="ask")

    async def ask(pilot):
        await ready(app, pilot)
        await send(app, pilot, "fix add")
        await wait_until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval dialog")
        fixed_status(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=ask)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_approval_of_a_command(calc_repo, snap_compare, size):
    script = [{"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "npm test -- --watch=false"}}]},
              {"content": "done"}]
    app = make_app(calc_repo, script, mode="ask")

    async def ask(pilot):
        await ready(app, pilot)
        await send(app, pilot, "run the js tests")
        await wait_until(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval dialog")
        fixed_status(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=ask)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_keys_help(calc_repo, snap_compare, size):
    app = make_app(calc_repo, [])

    async def keys(pilot):
        await ready(app, pilot)
        fixed_status(app)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=keys)
