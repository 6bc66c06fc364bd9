"""Slash commands and the command palette, the status bar at 80 columns, and a worker that fails."""

from __future__ import annotations

from dsv4.agent.events import ToolFinished
from dsv4.tui.screens.chat import ChatScreen
from dsv4.tui.screens.keys_help import KeysHelp
from dsv4.tui.widgets.diff_view import DiffView
from dsv4.tui.widgets.notice import Notice
from dsv4.tui.widgets.status_bar import StatusBar
from dsv4.tui.widgets.user_message import UserMessage

from ..conftest import FIX_SCRIPT
from .helpers import chat, make_app, ready, send, settle, turn, wait_until


def notices(app) -> list[str]:
    return [n.text for n in chat(app).query(Notice)]


async def command(app, pilot, text: str) -> None:
    await send(app, pilot, text)
    await settle(app, pilot)


async def test_help_unknown_and_escaped_slash(calc_repo):
    app = make_app(calc_repo, [{"content": "a prompt"}])
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await command(app, pilot, "/help")
        await command(app, pilot, "/nosuch")
        assert "/compact" in notices(app)[0] and "unknown command /nosuch" in notices(app)[1]
        await turn(app, pilot, "//x")
        assert [w.text for w in chat(app).query(UserMessage)] == ["/x"]


async def test_undo_rewind_and_diff(calc_repo):
    script = [FIX_SCRIPT[1], {"content": "fixed"},
              {"content": "", "tool_calls": [{"name": "write_file", "arguments": {"path": "NOTES.md", "content": "n\n"}}]},
              {"content": "noted"}]
    app = make_app(calc_repo, script)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await turn(app, pilot, "fix")
        await turn(app, pilot, "note")
        await command(app, pilot, "/diff")
        diff = chat(app).query(DiffView)[-1].diff
        assert "+    return a + b" in diff and "NOTES.md" in diff
        await command(app, pilot, "/undo")
        assert not (calc_repo / "NOTES.md").exists() and "a + b" in (calc_repo / "calc" / "__init__.py").read_text()
        await command(app, pilot, "/rewind 1")
        assert "a - b" in (calc_repo / "calc" / "__init__.py").read_text()
        await command(app, pilot, "/rewind x")
        assert any("NOTES.md" in n for n in notices(app)) and "usage: /rewind N" in notices(app)[-1]


async def test_mode_cost_compact_clear_and_context(calc_repo):
    # A long command output gives /compact something to drop: a compaction that would not shrink is not made.
    long_output = {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "yes log | head -c 8000"}}]}
    app = make_app(calc_repo, [long_output, long_output, {"content": "hi"}], mode="ask")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        await command(app, pilot, "/mode full-auto")
        assert screen.query_one(StatusBar).mode == "full-auto" and screen.session._loop.policy.mode == "full-auto"
        await command(app, pilot, "/mode nonsense")
        assert chat(app).query(Notice)[-1].has_class("error")
        await turn(app, pilot, "hello")
        await command(app, pilot, "/cost")
        assert "prompt tokens" in notices(app)[-1] and "no price for scripted" in notices(app)[-1]
        await command(app, pilot, "/compact")
        assert notices(app)[-1].startswith("compacted (")
        await command(app, pilot, "/compact undo")
        assert "taken back" in notices(app)[-1]
        await command(app, pilot, "/context")
        assert "files whole" in notices(app)[-1]
        await command(app, pilot, "/clear")
        assert not screen.query(Notice) and not screen.query(UserMessage)


async def test_every_command_is_in_the_palette_and_f1_shows_the_keys(calc_repo):
    from dsv4.tui import commands
    from dsv4.tui.palette import SlashCommandProvider

    app = make_app(calc_repo, [])
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        provider = SlashCommandProvider(chat(app), None)
        found = [hit.text async for hit in provider.discover()]
        assert found == [f"/{name}" for name in commands.COMMANDS]
        hits = [hit async for hit in provider.search("undo")]
        assert hits and str(hits[0].text) == "/undo"
        hits[0].command()
        # The palette's worker starts the command's own worker: wait for what it says, not for one worker.
        await wait_until(pilot, lambda: bool(notices(app)) and "nothing to undo" in notices(app)[-1], "/undo's answer")
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, KeysHelp), "the keys help")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen), "the chat screen again")


async def test_status_bar_keeps_model_and_fill_at_80_columns(calc_repo):
    app = make_app(calc_repo, [])
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ready(app, pilot)
        status = screen.query_one(StatusBar)
        status.model_name, status.backend = "a-rather-long-model-name-for-testing", "openai @ 127.0.0.1:8000"
        status.context_used, status.context_window = 54_321, 131_072
        status.prompt_tokens, status.cached_tokens, status.cost = 1000, 500, 0.0123
        status.branch, status.dirty = "feature/with-a-long-branch-name", True
        await pilot.pause()
        shown = status.plain
        assert "a-rather-long-model-name-for-testing" in shown and "ctx 54.3k/131.1k 41%" in shown
        assert len(shown) <= 78 and status.session_id not in shown
        wide = status.fitted(200)
        assert len(wide) == len(status.parts())


async def test_a_failing_worker_never_leaves_the_screen_busy(calc_repo):
    class Broken(Exception):
        pass

    app = make_app(calc_repo, [{"content": "", "tool_calls": [{"name": "read_file", "arguments": {"path": "x"}}]}])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)

        def explode(event):
            if isinstance(event, ToolFinished):
                raise Broken("renderer exploded")

        screen.session._loop.emit = explode  # an emit that raises inside the turn's worker
        await send(app, pilot, "go")
        await wait_until(pilot, lambda: not screen.busy, "the failed turn to end")
        assert any("renderer exploded" in n for n in notices(app))
        assert screen.query_one(StatusBar).state == "ready"
