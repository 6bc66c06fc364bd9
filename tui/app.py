"""The Textual app: one chat screen over an `AgentSession` of the current repository (the TUI's only way in)."""

from __future__ import annotations

import os
from typing import Any

from textual.app import App

from ..agent.backends.resolve import describe
from ..agent.config import Settings
from ..agent.repo import Repo
from ..agent.session import AgentSession, agent_config, list_sessions, session_policy
from .screens.chat import ChatScreen
from .screens.session_picker import SessionPicker


class DSV4App(App):
    TITLE = "dsv4-code"

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
        sessions = list_sessions(self.repo) if self.pick_session else []
        if sessions:
            self.push_screen(SessionPicker(sessions), self._start_chat)
        else:
            self._start_chat(self.resume_id)

    def _start_chat(self, resume_id: str | None) -> None:
        settings = self.settings
        policy, config = session_policy(settings), agent_config(settings)

        def open_session(emit: Any, approver: Any) -> AgentSession:
            return AgentSession.open(self.repo, settings, policy, config, resume_id=resume_id, emit=emit,
                                     approver=approver, backend=self.backend)

        self.chat = ChatScreen(open_session, describe(settings))
        self.push_screen(self.chat)

    async def action_quit(self) -> None:
        if self.chat is not None:
            self.chat.release()
        self.exit()


def run_tui(repo: Repo, settings: Settings, resume_id: str | None = None, pick_session: bool = False) -> int:
    os.environ.setdefault("LANCEDB_LOG", "error")  # LanceDB logs would draw over the screen
    DSV4App(repo, settings, resume_id=resume_id, pick_session=pick_session).run()
    return 0
