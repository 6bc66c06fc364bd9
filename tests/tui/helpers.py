"""Shared Pilot helpers: a real app over a real repo and the scripted model; waiting by polling state, never by
sleeping a fixed time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dsv4.agent.backends.script import ScriptedTurn
from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.agent.config import load_settings
from dsv4.agent.repo import find_repo
from dsv4.tui.app import DSV4App
from dsv4.tui.screens.chat import ChatScreen
from dsv4.tui.widgets.prompt_editor import PromptEditor

POLLS = 2000  # pauses before wait_until gives up: far longer than any flow here, short of the test timeout


def make_app(repo_root: Path, script: list[dict[str, Any]], mode: str = "full-auto", test_command: str | None = None,
             backend: Any = None, **kwargs: Any) -> DSV4App:
    repo = find_repo(repo_root)
    settings = load_settings(repo.root, permission_mode=mode, test_command=test_command)
    backend = backend or ScriptedBackend([ScriptedTurn.model_validate(t) for t in script])
    return DSV4App(repo, settings, backend=backend, **kwargs)


async def wait_until(pilot: Any, condition: Callable[[], bool], what: str) -> None:
    for _ in range(POLLS):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"gave up waiting for {what}")


async def settle(app: DSV4App, pilot: Any) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


def chat(app: DSV4App) -> ChatScreen:
    assert app.chat is not None
    return app.chat


async def ready(app: DSV4App, pilot: Any) -> ChatScreen:
    """The chat screen once its session is open: waits for the loading worker itself rather than polling."""
    def loading() -> bool:
        return app.chat is not None and (app.chat.session is not None or any(w.group == "load" for w in app.workers))

    await wait_until(pilot, loading, "the session to start loading")  # the load starts after the first frame
    await app.workers.wait_for_complete()
    await wait_until(pilot, lambda: app.chat is not None and app.chat.session is not None, "the session to open")
    await settle(app, pilot)
    return chat(app)


async def send(app: DSV4App, pilot: Any, text: str) -> None:
    """Set the prompt text directly and press Enter (one test types key by key instead)."""
    editor = chat(app).query_one(PromptEditor)
    editor.focus()
    editor.set_value(text)
    await pilot.press("enter")
    await pilot.pause()


async def turn(app: DSV4App, pilot: Any, text: str) -> None:
    await send(app, pilot, text)
    await wait_until(pilot, lambda: not chat(app).busy and not chat(app).queue, "the turn to finish")
    await settle(app, pilot)
