"""The Textual app: one chat screen over an `AgentSession` of the current repository (the TUI's only way in)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from textual.app import App

from ..agent.backends.resolve import describe
from ..agent.config import Settings
from ..agent.repo import Repo
from ..agent.session import AgentSession, agent_config, list_sessions, session_policy
from ..agent.config import dsv4_home  # the TUI reaches the home directory through the agent layer
from .history import PromptHistory, history_path
from .palette import SlashCommandProvider
from .screens.chat import ChatScreen
from .screens.session_picker import SessionPicker


class DSV4App(App):
    TITLE = "dsv4-code"
    COMMANDS = App.COMMANDS | {SlashCommandProvider}

    def __init__(self, repo: Repo, settings: Settings, resume_id: str | None = None, pick_session: bool = False,
                 backend: Any = None) -> None:
        super().__init__()
        self.repo = repo
        self.settings = settings
        self.resume_id = resume_id
        self.pick_session = pick_session
        self.backend = backend  # tests and embedders may hand in a ready backend
        self.chat: ChatScreen | None = None

    def on_mount(self) -> None:
        if self.pick_session:
            self.pick_session_in_worker()
        else:
            self._start_chat(self.resume_id)

    def pick_session_in_worker(self) -> None:
        def read() -> None:
            self.call_from_thread(self.pick_session_to_resume, list_sessions(self.repo))

        self.run_worker(read, thread=True, group="sessions", exit_on_error=False)

    def pick_session_to_resume(self, sessions: list[Any]) -> None:
        """Show the picker (a chat already open keeps running until another session is picked)."""
        if not sessions:
            if self.chat is None:
                self._start_chat(None)
            else:
                self.notify("no other session in this repository")
            return

        def picked(session_id: str | None) -> None:
            if self.chat is None:
                self._start_chat(session_id)
            elif session_id is not None and self.chat.session is not None and session_id != self.chat.session.session_id:
                self.switch_session(session_id)

        self.push_screen(SessionPicker(sessions, allow_new=self.chat is None), picked)

    def switch_session(self, session_id: str) -> None:
        if self.chat is not None:
            self.chat.release()  # its session closes when the screen is switched away and unmounted
        self._start_chat(session_id)

    def _start_chat(self, resume_id: str | None) -> None:
        settings = self.settings
        policy, config = session_policy(settings), agent_config(settings)

        def open_session(emit: Any, approver: Any) -> AgentSession:
            return AgentSession.open(self.repo, settings, policy, config, resume_id=resume_id, emit=emit,
                                     approver=approver, backend=self.backend)

        previous = self.chat
        label = describe(settings) if self.backend is None else ""  # a handed-in backend describes itself
        self.chat = ChatScreen(open_session, label, self.repo,
                               history=PromptHistory(history_path(self.repo.identity)),
                               mode=settings.permission_mode, prices=settings.prices)
        if previous is not None:
            self.switch_screen(self.chat)
        else:
            self.push_screen(self.chat)

    async def action_quit(self) -> None:
        if self.chat is not None:
            self.chat.release()
        self.exit()


@contextmanager
def stderr_to_log() -> Iterator[Path]:
    """Point file descriptor 2 at `$DSV4_HOME/logs/tui-<time>.log` while the app runs, so nothing a library or
    native code prints draws over the screen; restored afterwards."""
    logs = dsv4_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"tui-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield path
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run_tui(repo: Repo, settings: Settings, resume_id: str | None = None, pick_session: bool = False) -> int:
    os.environ.setdefault("LANCEDB_LOG", "error")  # LanceDB logs would draw over the screen
    with stderr_to_log():
        DSV4App(repo, settings, resume_id=resume_id, pick_session=pick_session).run()
    return 0
