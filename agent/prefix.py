"""The stable part of the prompt, snapshot at session start: repository instructions and the repository block.

The snapshot is logged (`context_snapshot`), and every later system message (after a forget, after a resume)
is rendered from it instead of re-reading AGENTS.md or rebuilding the repository block, so everything up to
the end of the system message stays byte-identical for the whole session: KV prefixes and server prompt
caches stay valid across compactions. Only the memory block is rendered anew (a forget must remove text).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from .context import Instruction, repo_instructions, system_prompt
from .sessions import SessionStore

SNAPSHOT_KIND = "context_snapshot"


class InstructionText(BaseModel):
    name: str
    text: str


class PromptPrefix(BaseModel):
    root: str
    test_command: str | None
    instructions: list[InstructionText]
    repository: str

    def render(self, permission_note: str = "", memory: str = "") -> str:
        """The system message; the permission note is the running process's own (a session started in the TUI
        may be continued headless)."""
        return system_prompt(Path(self.root), self.test_command, self.repository, permission_note, memory=memory,
                             instructions=[Instruction(name=i.name, text=i.text) for i in self.instructions])


def snapshot_prefix(root: Path, test_command: str | None, repository: str) -> PromptPrefix:
    return PromptPrefix(root=str(root), test_command=test_command,
                        instructions=[InstructionText(name=i.name, text=i.text) for i in repo_instructions(root)],
                        repository=repository)


def session_prefix(store: SessionStore, session_id: str, build: Callable[[], PromptPrefix]) -> PromptPrefix:
    """The session's logged snapshot; a session without one (new, or older than snapshots) gets one now."""
    logged = store.events(session_id, SNAPSHOT_KIND)
    if logged:
        return PromptPrefix.model_validate(logged[-1]["payload"])
    prefix = build()
    store.append(session_id, store.turns(session_id), SNAPSHOT_KIND, prefix.model_dump())
    return prefix
