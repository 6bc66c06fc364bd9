"""The prompt editor: typing, newlines, history per repository, @path and /command completion, large pastes,
and prompts typed before the model is ready (queued, not refused)."""

from __future__ import annotations

import threading

from textual import events

from dsv4.agent.backends.script import ScriptedTurn
from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.tui.widgets.assistant_message import AssistantMessage
from dsv4.tui.widgets.prompt_editor import PromptEditor
from dsv4.tui.widgets.user_message import UserMessage

from .helpers import chat, make_app, ready, send, settle, turn, wait_until


class GatedBackend(ScriptedBackend):
    """The scripted model, but "loading" until the test opens the gate (its context window is read at open)."""

    def __init__(self, turns: list[dict]) -> None:
        super().__init__([ScriptedTurn.model_validate(t) for t in turns])
        self.gate = threading.Event()

    @property
    def context_window(self) -> int:
        self.gate.wait()
        return super().context_window


async def test_typed_prompt_with_a_newline_is_sent_whole(calc_repo):
    app = make_app(calc_repo, [{"content": "Hello **there**"}])
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await pilot.click("#prompt")
        for key in ["h", "i", "ctrl+j", "y", "o", "u"]:
            await pilot.press(key)
        await pilot.press("enter")
        await wait_until(pilot, lambda: not chat(app).busy and bool(chat(app).query(AssistantMessage)), "the reply")
        await settle(app, pilot)
        assert [m.text for m in chat(app).query(UserMessage)] == ["hi\nyou"]
        assert chat(app).query_one(PromptEditor).text == ""


async def test_history_is_kept_per_repository_and_walked_with_up_and_down(calc_repo):
    app = make_app(calc_repo, [{"content": "one"}, {"content": "two"}])
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await turn(app, pilot, "first prompt")
        await turn(app, pilot, "second prompt")
    again = make_app(calc_repo, [])
    async with again.run_test(size=(100, 30)) as pilot:
        await ready(again, pilot)
        editor = chat(again).query_one(PromptEditor)
        editor.focus()
        await pilot.press("up")
        assert editor.text == "second prompt"
        await pilot.press("up")
        assert editor.text == "first prompt"
        await pilot.press("down")
        assert editor.text == "second prompt"
        await pilot.press("down")
        assert editor.text == ""


async def test_tab_completes_tracked_paths_and_slash_commands(calc_repo):
    app = make_app(calc_repo, [])
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        editor = chat(app).query_one(PromptEditor)
        await wait_until(pilot, lambda: bool(editor.files), "the tracked files")
        editor.focus()
        editor.set_value("look at @calc/")
        await pilot.press("tab")
        assert editor.text == "look at @calc/__init__.py "
        editor.set_value("/und")
        await pilot.press("tab")
        assert editor.text == "/undo "
        editor.set_value("/re")
        await pilot.press("tab")
        await pilot.pause()
        shown = chat(app).query_one("#completions")
        assert editor.text == "/re" and shown.has_class("shown")  # /remember and /rewind: both offered


async def test_a_large_paste_shows_as_one_line_and_is_sent_whole(calc_repo):
    app = make_app(calc_repo, [{"content": "got it"}])
    big = "\n".join(f"line {n}" for n in range(100))
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        editor = chat(app).query_one(PromptEditor)
        editor.focus()
        editor.set_value("explain ")
        editor.post_message(events.Paste(big))
        await pilot.pause()
        assert editor.text == "explain [pasted #1: 100 lines]"
        assert editor.value == "explain " + big
        await pilot.press("enter")
        await wait_until(pilot, lambda: not chat(app).busy and bool(chat(app).query(AssistantMessage)), "the reply")
        assert app.backend.requests[0][-1].content == "explain " + big


async def test_a_prompt_sent_while_the_model_loads_is_queued_and_runs_once_ready(calc_repo):
    backend = GatedBackend([{"content": "loaded and answered"}])
    app = make_app(calc_repo, [], backend=backend)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.chat is not None and app.chat.is_mounted, "the chat screen")
        screen = chat(app)
        assert screen.session is None
        await send(app, pilot, "early question")
        assert [m.has_class("queued") for m in screen.query(UserMessage)] == [True]
        backend.gate.set()
        await wait_until(pilot, lambda: bool(screen.query(AssistantMessage)) and not screen.busy, "the queued turn")
        await settle(app, pilot)
        assert [m.has_class("queued") for m in screen.query(UserMessage)] == [False]
        assert screen.query_one(AssistantMessage).text == "loaded and answered"
