"""The Textual app: one chat screen over an `AgentSession` of the current repository (the TUI's only way in)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from textual.app import App

from ..agent.backends.resolve import describe
from ..agent.config import Settings
from ..agent.repo import Repo
from ..agent.session import AgentSession, agent_config, list_sessions, session_policy
from ..agent.trust import is_trusted, trust_repo
from ..agent.config import dsv4_home  # the TUI reaches the home directory through the agent layer
from .history import PromptHistory, history_path
from .palette import SlashCommandProvider
from .screens.chat import ChatScreen
from .screens.session_picker import SessionPicker
from .screens.trust_prompt import TrustPrompt


class DSV4App(App):
    TITLE = "dsv4-code"
    COMMANDS = App.COMMANDS | {SlashCommandProvider}

    def __init__(self, repo: Repo, settings: Settings, resume_id: str | None = None, pick_session: bool = False,
                 backend: Any = None, needs_trust: list[str] | None = None,
                 trusted_settings: Callable[[], Settings] | None = None) -> None:
        super().__init__()
        self.repo = repo
        self.settings = settings
        self.resume_id = resume_id
        self.pick_session = pick_session
        self.backend = backend  # tests and embedders may hand in a ready backend
        self.chat: ChatScreen | None = None
        # What the untrusted repository's own config wanted (settings_needing_trust) and how to load the settings
        # with it once trusted; asked before the session opens, since these settings choose the backend.
        self.needs_trust = needs_trust or []
        self.trusted_settings = trusted_settings
        self.startup_notice = ""

    def on_mount(self) -> None:
        if self.needs_trust and self.trusted_settings is not None:
            self.push_screen(TrustPrompt(str(self.repo.root), self.needs_trust), self._trust_answered)
        else:
            self._open_first()

    def _trust_answered(self, answer: str | None) -> None:
        if answer == "trust":
            self.trust_in_worker()
            return
        self.startup_notice = (f"this repository is not trusted: its settings {', '.join(self.needs_trust)} were "
                               "ignored ('dsv4-code trust' trusts it)")
        self._open_first()

    def trust_in_worker(self) -> None:
        def trust() -> None:
            trust_repo(self.repo.identity, self.repo.root)
            assert self.trusted_settings is not None, "asked only with a way to load the trusted settings"
            settings = self.trusted_settings()
            self.call_from_thread(self._trusted, settings)

        self.run_worker(trust, thread=True, group="trust", exit_on_error=False)

    def _trusted(self, settings: Settings) -> None:
        self.settings = settings
        self.startup_notice = "trusted this repository: its own config applies ('dsv4-code trust --revoke' takes it back)"
        self._open_first()

    def on_worker_state_changed(self, event: Any) -> None:
        if event.worker.group == "trust" and event.worker.error is not None:
            self.startup_notice = f"error: could not trust this repository: {event.worker.error}"
            self._open_first()

    def _open_first(self) -> None:
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

        def open_session(emit: Any, approver: Any, on_progress: Any) -> AgentSession:
            return AgentSession.open(self.repo, settings, policy, config, resume_id=resume_id, emit=emit,
                                     approver=approver, backend=self.backend, on_progress=on_progress)

        previous = self.chat
        label = describe(settings) if self.backend is None else ""  # a handed-in backend describes itself
        self.chat = ChatScreen(open_session, label, self.repo,
                               history=PromptHistory(history_path(self.repo.identity)),
                               mode=settings.permission_mode, prices=settings.prices, notice=self.startup_notice)
        self.startup_notice = ""
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


def settings_needing_trust(repo: Repo, ignored_keys: list[str]) -> list[str]:
    """What the repository's own config would set if it were trusted: the `.dsv4/config.toml` keys refused
    (LoadedSettings.ignored_repo_keys) and its `.mcp.json` servers."""
    wanted = list(ignored_keys)
    if (repo.root / ".mcp.json").is_file() and not is_trusted(repo.identity):
        wanted.append(".mcp.json servers")
    return wanted


def run_tui(repo: Repo, settings: Settings, resume_id: str | None = None, pick_session: bool = False,
            ignored_keys: list[str] | None = None, trusted_settings: Callable[[], Settings] | None = None) -> int:
    """`trusted_settings` loads the settings with the repository's own config applied; with `ignored_keys` (or a
    `.mcp.json`) the app asks whether to trust the repository before the session opens."""
    os.environ.setdefault("LANCEDB_LOG", "error")  # LanceDB logs would draw over the screen
    with stderr_to_log():
        DSV4App(repo, settings, resume_id=resume_id, pick_session=pick_session,
                needs_trust=settings_needing_trust(repo, ignored_keys or []), trusted_settings=trusted_settings).run()
    return 0
