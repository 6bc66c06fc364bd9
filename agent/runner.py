"""Assembling a working agent for a repository: settings, backend, session store, tools, system prompt."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..tools.checkpoints import CheckpointStore
from ..tools.run_tests import detect_test_command
from ..memory.store import MemoryStore
from ..tools.memory_tools import MEMORY_TOOLS
from ..tools.toolbox import DEFAULT_TOOLS, Toolbox
from ..tools.workspace import Workspace
from .backends.base import Backend
from .backends.resolve import make_backend
from .config import Settings
from .context import repository_block, system_prompt
from .context_cli import backend_token_counter, repo_budget
from .events import AgentEvent, MemoryChanged
from ..home import dsv4_home
from .loop import Agent, AgentConfig, Approver
from .messages import Message, system as system_message
from .permissions import Policy
from .repo import Repo
from .sessions import SessionNotFound, SessionStore

if TYPE_CHECKING:
    from ..tools.repo_map import RepoContext


@dataclass
class AgentSession:
    repo: Repo
    settings: Settings
    backend: Backend
    store: SessionStore
    session_id: str
    workspace: Workspace
    agent: Agent
    resumed: bool
    repository: RepoContext
    memory: MemoryStore


def test_command_for(repo: Repo, settings: Settings) -> str | None:
    return settings.test_command or detect_test_command(repo.root)


def open_store() -> SessionStore:
    return SessionStore(dsv4_home() / "sessions.db")


def resolve_session(store: SessionStore, repo: Repo, resume: str | None, continue_latest: bool) -> str | None:
    """The id of the session to resume, or None for a new one; a resume ID may be a unique prefix."""
    if resume:
        matches = [s.id for s in store.list(repo.identity) if s.id.startswith(resume)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise SessionNotFound(f"no session {resume!r} in this repository (see 'dsv4-code sessions')")
        raise SessionNotFound(f"session prefix {resume!r} is ambiguous: {', '.join(matches[:5])}")
    if continue_latest:
        latest = store.latest(repo.identity)
        if latest is None:
            raise SessionNotFound("no earlier session in this repository to continue")
        return latest.id
    return None


def open_agent_session(repo: Repo, settings: Settings, policy: Policy, config: AgentConfig, *,
                       resume_id: str | None = None, emit: Callable[[AgentEvent], None] | None = None,
                       approver: Approver | None = None, backend: Backend | None = None,
                       store: SessionStore | None = None) -> AgentSession:
    backend = backend or make_backend(settings)
    store = store or open_store()
    test_command = test_command_for(repo, settings)
    workspace = Workspace(repo.root, test_command=test_command, repo_id=repo.identity, syntax_gate=settings.syntax_gate)
    history: list[Message] = []
    if resume_id is not None:
        history = store.messages(resume_id)
        session_id = resume_id
        store.set_status(session_id, "active")
    else:
        session_id = store.create(repo.identity, repo.root, backend.model_id)
    workspace.session_id = session_id
    note = "" if not policy.headless else (
        "You run headless: no one can approve anything. Shell commands other than the tests are denied."
        if not policy.allow_shell else "You run headless: no one can answer questions, so decide and proceed.")
    # Only a backend with the model's own tokenizer counts better than the loader's deliberately high estimate.
    counter = backend_token_counter(backend) if backend.exact_token_count else None
    repository = repository_block(repo.root, repo_budget(backend.context_window), counter)
    checkpoints = CheckpointStore(repo.root)
    checkpoints.prune()
    memory = MemoryStore.open(dsv4_home())  # the embedder loads on first recall; the TUI warms it up early
    workspace.memory = memory

    def system_text() -> str:
        # Computed at session start (and after a forget), not per turn, so the prompt prefix stays stable.
        block = memory.current_view(repo.identity, session_id)
        return system_prompt(repo.root, test_command, repository.text, note, memory=block.text)

    def capture(text: str, turn: int) -> list[AgentEvent]:
        return [MemoryChanged(action="captured", item_id=r.item.id, text=r.item.text, key=r.item.key)
                for r in memory.capture(text, repo_id=repo.identity, session_id=session_id, turn=turn) if not r.unchanged]

    def after_forget() -> list[Message]:
        backend.drop_cache()
        return [system_message(system_text())] + store.messages(session_id)

    agent = Agent(backend, Toolbox(workspace, DEFAULT_TOOLS + MEMORY_TOOLS), store, session_id, system_text(), policy,
                  config, emit=emit, approver=approver, history=history,
                  before_first_change=lambda turn: checkpoints.capture(session_id, turn),
                  on_user_message=capture, after_forget=after_forget)
    return AgentSession(repo=repo, settings=settings, backend=backend, store=store, session_id=session_id,
                        workspace=workspace, agent=agent, resumed=resume_id is not None, repository=repository,
                        memory=memory)


def default_root() -> Path:
    return Path.cwd()
