"""The TUI driven by Pilot: a real Textual app, a real repo, the scripted model."""

from __future__ import annotations

import time

from dsv4.agent.backends.script import ScriptedTurn
from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.agent.config import load_settings
from dsv4.agent.repo import find_repo
from dsv4.agent.sessions import SessionStore
from dsv4.tui.app import DSV4App
from dsv4.tui.screens.approval import ApprovalScreen
from dsv4.tui.screens.chat import ChatScreen
from dsv4.tui.screens.session_picker import SessionPicker
from dsv4.tui.widgets.assistant_message import AssistantMessage
from dsv4.tui.widgets.notice import Notice
from dsv4.tui.widgets.status_bar import StatusBar
from dsv4.tui.widgets.tool_line import ToolLine
from dsv4.tui.widgets.user_message import UserMessage

from ..conftest import FIX_SCRIPT


def make_app(repo_root, script, mode="full-auto", test_command=None, **kwargs) -> DSV4App:
    repo = find_repo(repo_root)
    settings = load_settings(repo.root, permission_mode=mode, test_command=test_command)
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in script])
    return DSV4App(repo, settings, backend=backend, **kwargs)


async def send(pilot, text: str) -> None:
    await pilot.click("#prompt")
    for char in text:
        await pilot.press(char if char != " " else "space")
    await pilot.press("enter")


async def settle(app, pilot) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_prompt_streams_reply_and_one_line_per_tool_call(calc_repo):
    app = make_app(calc_repo, FIX_SCRIPT)
    started = time.perf_counter()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        ready_s = time.perf_counter() - started
        screen = app.screen
        assert isinstance(screen, ChatScreen) and screen.query_one(StatusBar).state == "ready"
        assert app.focused is screen.query_one("#prompt")
        await send(pilot, "fix the test")
        await settle(app, pilot)
        await pilot.pause()
        users = [w.text for w in screen.query(UserMessage)]
        replies = [w.text for w in screen.query(AssistantMessage)]
        tools = [(w.tool_name, w.state) for w in screen.query(ToolLine)]
        assert users == ["fix the test"]
        assert replies == ["Let me look at the code.", "Fixed add(): it subtracted instead of adding. All tests pass."]
        assert tools == [("read_file", "ok"), ("edit_file", "ok"), ("run_tests", "ok")]
        status = screen.query_one(StatusBar).render()
        assert "model: scripted" in status and "tokens" in status
    assert "a + b" in (calc_repo / "calc" / "__init__.py").read_text()
    assert ready_s < 5  # generous bound for a loaded CI machine; the measured figure is in the closing note


async def test_ask_mode_shows_an_approval_dialog(calc_repo):
    script = [FIX_SCRIPT[1], {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "touch x.txt"}}]},
              {"content": "ok"}]
    app = make_app(calc_repo, script, mode="ask")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await send(pilot, "go")
        for _ in range(50):
            await pilot.pause(0.05)
            if isinstance(app.screen, ApprovalScreen):
                break
        assert isinstance(app.screen, ApprovalScreen) and app.screen.tool_name == "edit_file"
        await pilot.press("y")
        for _ in range(50):
            await pilot.pause(0.05)
            if isinstance(app.screen, ApprovalScreen) and app.screen.tool_name == "bash":
                break
        assert isinstance(app.screen, ApprovalScreen) and app.screen.tool_name == "bash"
        await pilot.press("n")
        await settle(app, pilot)
        states = [(w.tool_name, w.state) for w in app.screen.query(ToolLine)]
        assert states == [("edit_file", "ok"), ("bash", "denied")]
    assert "a + b" in (calc_repo / "calc" / "__init__.py").read_text()
    assert not (calc_repo / "x.txt").exists()


async def test_resume_shows_history_and_continues_the_same_session(calc_repo):
    first = make_app(calc_repo, FIX_SCRIPT)
    async with first.run_test(size=(100, 30)) as pilot:
        await settle(first, pilot)
        await send(pilot, "fix the test")
        await settle(first, pilot)
        session_id = first.screen.session.session_id
    second = make_app(calc_repo, [{"content": "Still here."}], resume_id=session_id)
    async with second.run_test(size=(100, 30)) as pilot:
        await settle(second, pilot)
        screen = second.screen
        assert [w.text for w in screen.query(UserMessage)] == ["fix the test"]
        assert len(screen.query(ToolLine)) == 3
        assert any("resumed session" in n.text for n in screen.query(Notice))
        await send(pilot, "still there?")
        await settle(second, pilot)
        assert screen.query(AssistantMessage)[-1].text == "Still here."
        sent = second.backend.requests[0]
        assert [m.role for m in sent][:2] == ["system", "user"] and sent[-1].content == "still there?"
    assert [s.id for s in SessionStore.open_default().list(find_repo(calc_repo).identity)] == [session_id]


async def test_resume_without_id_opens_a_picker(calc_repo):
    first = make_app(calc_repo, [{"content": "hello"}])
    async with first.run_test() as pilot:
        await settle(first, pilot)
        await send(pilot, "hi")
        await settle(first, pilot)
        session_id = first.screen.session.session_id
    picker_app = make_app(calc_repo, [{"content": "again"}], pick_session=True)
    async with picker_app.run_test() as pilot:
        await pilot.pause()
        assert isinstance(picker_app.screen, SessionPicker)
        await pilot.press("enter")
        await settle(picker_app, pilot)
        assert picker_app.screen.session.session_id == session_id


async def test_backend_error_is_shown_not_crashed(calc_repo):
    app = make_app(calc_repo, [])
    async with app.run_test() as pilot:
        await settle(app, pilot)
        await send(pilot, "hello")
        await settle(app, pilot)
        notices = [n.text for n in app.screen.query(Notice)]
        assert any("no reply left" in n for n in notices)
        assert app.screen.query_one(StatusBar).state == "ready"


async def test_slash_commands(calc_repo):
    app = make_app(calc_repo, [{"content": "/help is a command, //x is a prompt"}])
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await send(pilot, "/help")
        await send(pilot, "/nosuch")
        await pilot.pause()
        notices = [n.text for n in app.screen.query(Notice)]
        assert "/session" in notices[0] and "unknown command /nosuch" in notices[1]
        await send(pilot, "//x")
        await settle(app, pilot)
        assert [w.text for w in app.screen.query(UserMessage)] == ["/x"]


def test_chat_screen_snapshot(calc_repo, snap_compare):
    script = [FIX_SCRIPT[0], FIX_SCRIPT[1], {"content": "Fixed add()."}]
    # A fixed test command: the detected one holds this checkout's interpreter path, which would change the token count.
    app = make_app(calc_repo, script, test_command="python -m pytest -q")

    async def run_turn(pilot):
        await settle(app, pilot)
        await send(pilot, "fix the test")
        await settle(app, pilot)
        app.screen.query_one(StatusBar).session_id = "SESSION"  # the only value that differs between runs

    assert snap_compare(app, terminal_size=(90, 24), run_before=run_turn)


async def test_context_command_reports_the_block_and_files_changed_since(calc_repo):
    app = make_app(calc_repo, FIX_SCRIPT)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await send(pilot, "fix the test")
        await settle(app, pilot)
        screen = app.screen
        for _ in range(100):  # the watcher debounces; wait for its report rather than a fixed sleep
            if "calc/__init__.py" in screen.changed_files:
                break
            await pilot.pause(0.05)
        await send(pilot, "/context")
        await pilot.pause()
        text = screen.query(Notice)[-1].text
        assert "files whole" in text and "calc/__init__.py" in text
        assert "Changed since this session's context was built" in text


async def test_undo_and_rewind_commands(calc_repo):
    script = [FIX_SCRIPT[1], {"content": "fixed"},
              {"content": "", "tool_calls": [{"name": "write_file", "arguments": {"path": "NOTES.md", "content": "n\n"}}]},
              {"content": "noted"}]
    app = make_app(calc_repo, script)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await send(pilot, "fix")
        await settle(app, pilot)
        await send(pilot, "note")
        await settle(app, pilot)
        assert (calc_repo / "NOTES.md").exists()
        await send(pilot, "/undo")
        await pilot.pause()
        assert not (calc_repo / "NOTES.md").exists() and "a + b" in (calc_repo / "calc" / "__init__.py").read_text()
        await send(pilot, "/rewind 1")
        await pilot.pause()
        assert "a - b" in (calc_repo / "calc" / "__init__.py").read_text()
        notices = [n.text for n in app.screen.query(Notice)]
        assert any("NOTES.md" in n for n in notices) and any("calc/__init__.py" in n for n in notices)


async def test_memory_commands(calc_repo):
    app = make_app(calc_repo, [{"content": "Noted."}])
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await send(pilot, "/remember style=use tabs")
        await send(pilot, "/remember style=use spaces")
        await send(pilot, "/memory")
        await pilot.pause()
        notices = [n.text for n in app.screen.query(Notice)]
        assert "replaces" in notices[1] and "use spaces" in notices[2] and "use tabs" not in notices[2]
        await send(pilot, "/forget style")
        await send(pilot, "/memory")
        await send(pilot, "/forget style")
        await pilot.pause()
        notices = [n.text for n in app.screen.query(Notice)]
        assert notices[3].startswith("forgot") and "no memories" in notices[4]
        assert app.screen.query(Notice)[-1].has_class("error")
        await send(pilot, "From now on never use semicolons")
        await settle(app, pilot)
        assert any("semicolons" in n.text and "/forget" in n.text for n in app.screen.query(Notice))


async def test_compact_and_compact_undo_commands(calc_repo):
    script = [FIX_SCRIPT[0], {"content": "read it"}, {"content": "second answer"}]
    app = make_app(calc_repo, script)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await send(pilot, "look")
        await settle(app, pilot)
        await send(pilot, "again")
        await settle(app, pilot)
        assert "context" in str(app.screen.query_one(StatusBar).render())  # the meter in the status bar
        await send(pilot, "/compact the fix")
        await settle(app, pilot)
        await send(pilot, "/compact undo")
        await pilot.pause()
        notices = [n.text for n in app.screen.query(Notice)]
        assert any(n.startswith("compacted (manual, model summary)") for n in notices), notices
        assert any(n.startswith("took back compaction") for n in notices), notices
