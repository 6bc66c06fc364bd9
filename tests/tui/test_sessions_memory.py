"""Resuming from the picker (at start and with /sessions) and the memory panel (forget and pin from there)."""

from __future__ import annotations

from textual.widgets import OptionList

from dsv4.agent.repo import find_repo
from dsv4.agent.sessions import SessionStore
from dsv4.tui.screens.memory_panel import MemoryPanel
from dsv4.tui.screens.session_picker import SessionPicker
from dsv4.tui.widgets.assistant_message import AssistantMessage
from dsv4.tui.widgets.event_line import EventLine
from dsv4.tui.widgets.notice import Notice
from dsv4.tui.widgets.tool_card import ToolCard
from dsv4.tui.widgets.user_message import UserMessage

from ..conftest import FIX_SCRIPT
from .helpers import chat, make_app, ready, send, settle, turn, wait_until


async def test_resume_from_the_picker_replays_history_and_continues_the_session(calc_repo):
    first = make_app(calc_repo, FIX_SCRIPT)
    async with first.run_test(size=(100, 30)) as pilot:
        await ready(first, pilot)
        await turn(first, pilot, "fix the test")
        session_id = chat(first).session.session_id
    second = make_app(calc_repo, [{"content": "Still here."}], pick_session=True)
    async with second.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(second.screen, SessionPicker), "the session picker")
        await pilot.press("enter")
        screen = await ready(second, pilot)
        assert screen.session.session_id == session_id
        assert [w.text for w in screen.query(UserMessage)] == ["fix the test"]
        assert [c.state for c in screen.query(ToolCard)] == ["ok", "ok", "ok"]
        assert any("resumed session" in n.text for n in screen.query(Notice))
        await turn(second, pilot, "still there?")
        assert screen.query(AssistantMessage)[-1].text == "Still here."
        sent = second.backend.requests[0]
        assert [m.role for m in sent][:2] == ["system", "user"] and sent[-1].content == "still there?"
    assert [s.id for s in SessionStore.open_default().list(find_repo(calc_repo).identity)] == [session_id]


async def test_sessions_command_switches_to_another_session(calc_repo):
    first = make_app(calc_repo, [{"content": "first answer"}])
    async with first.run_test(size=(100, 30)) as pilot:
        await ready(first, pilot)
        await turn(first, pilot, "the first session")
        old_id = chat(first).session.session_id
    app = make_app(calc_repo, [{"content": "second answer"}])
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await turn(app, pilot, "the second session")
        await send(app, pilot, "/sessions")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionPicker), "the session picker")
        picker = app.screen.query_one(OptionList)
        index = next(i for i in range(picker.option_count) if picker.get_option_at_index(i).id == old_id)
        picker.highlighted = index
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.session is not None and app.chat.session.session_id == old_id,
                         "the old session to open")
        await settle(app, pilot)
        assert [w.text for w in app.chat.query(UserMessage)] == ["the first session"]


async def test_forget_and_pin_from_the_memory_panel(calc_repo):
    app = make_app(calc_repo, [{"content": "ok"}])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        await send(app, pilot, "/remember style=use tabs")
        await send(app, pilot, "/remember the tests live in tests/")
        await settle(app, pilot)
        await send(app, pilot, "/memory")
        await wait_until(pilot, lambda: isinstance(app.screen, MemoryPanel) and len(app.screen.items) == 2, "the panel")
        panel = app.screen
        texts = [item.text for item in panel.items]
        assert sorted(texts) == ["the tests live in tests/", "use tabs"]
        options = panel.query_one(OptionList)
        tabs = next(i for i in range(options.option_count) if options.get_option_at_index(i).id ==
                    next(item.id for item in panel.items if item.text == "use tabs"))
        options.highlighted = tabs
        await pilot.press("f")
        await wait_until(pilot, lambda: len(panel.items) == 1, "the forget")
        assert panel.items[0].text == "the tests live in tests/"
        options.highlighted = 1
        await pilot.press("p")
        await wait_until(pilot, lambda: panel.items and panel.items[0].pinned, "the pin")
        await pilot.press("escape")
        assert app.screen is screen
        assert [i.text for i in screen.session.memories()] == ["the tests live in tests/"]
        await turn(app, pilot, "From now on never use semicolons")
        assert any("semicolons" in line.text and "/forget" in line.text for line in screen.query(EventLine))
