"""The task state the loop keeps: goal, files read and changed, commands, test runs, undos, open todos.

Nothing here is inferred from the conversation text: every field is folded from events the loop (or an
undo) logged as they happened, so the state is the same after a resume and survives any compaction.
`render()` is deterministic: the same events give the same text, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from ..tools.base import TodoItem

GOAL_CHARS = 6000  # the first request is kept nearly whole: it is the task
REFINEMENT_CHARS = 600
REFINEMENTS_SHOWN = 12
FILES_SHOWN = 200
COMMANDS_SHOWN = 15
TESTS_SHOWN = 5
COMMAND_CHARS = 200


class CommandRecord(BaseModel):
    command: str
    exit_code: int
    timed_out: bool = False


class TestRecord(BaseModel):
    __test__ = False  # not a pytest class
    command: str
    exit_code: int
    passed: int | None = None
    failed: int | None = None
    ok: bool


class TaskState(BaseModel):
    goal: str = ""
    refinements: list[str] = Field(default_factory=list)
    files_read: list[str] = Field(default_factory=list)
    files_changed: dict[str, str] = Field(default_factory=dict)  # path -> last action
    commands: list[CommandRecord] = Field(default_factory=list)
    tests: list[TestRecord] = Field(default_factory=list)
    undos: list[list[str]] = Field(default_factory=list)  # the files each undo restored
    todos: list[TodoItem] = Field(default_factory=list)

    @classmethod
    def fold(cls, events: Iterable[dict[str, Any]]) -> TaskState:
        state = cls()
        for event in events:
            state.apply(event["kind"], event["payload"])
        return state

    def apply(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "message" and payload.get("role") == "user":
            text = (payload.get("content") or "").strip()
            if not self.goal:
                self.goal = text
            elif text:
                self.refinements.append(text)
        elif kind == "file_read":
            for path in payload.get("paths", []):
                if path not in self.files_read:
                    self.files_read.append(path)
        elif kind == "file_changed":
            self.files_changed[payload["path"]] = payload["action"]
        elif kind == "command_ran":
            self.commands.append(CommandRecord.model_validate(payload))
        elif kind == "tests_ran":
            self.tests.append(TestRecord.model_validate(payload))
        elif kind == "undo":
            restored = list(payload.get("restored", []))
            self.undos.append(restored)
        elif kind == "todos":
            self.todos = [TodoItem.model_validate(item) for item in payload.get("items", [])]

    @property
    def open_todos(self) -> list[TodoItem]:
        return [item for item in self.todos if not item.done]

    def render(self) -> str:
        """The task state as the model reads it after a compaction."""
        lines = ["## Task state (kept by the agent, exact)", "", "Goal (the first request):", _clip(self.goal, GOAL_CHARS) or "(none yet)"]
        if self.refinements:
            lines += ["", "Later requests, oldest first:"]
            skipped = len(self.refinements) - REFINEMENTS_SHOWN
            if skipped > 0:
                lines.append(f"- ({skipped} earlier requests not shown)")
            lines += [f"- {_clip(text, REFINEMENT_CHARS)}" for text in self.refinements[-REFINEMENTS_SHOWN:]]
        lines += ["", "Files changed:"] + _listing([f"{path} ({action})" for path, action in self.files_changed.items()])
        lines += ["", "Files read:"] + _listing(self.files_read)
        if self.commands:
            lines += ["", f"Commands run ({len(self.commands)}; the last {min(len(self.commands), COMMANDS_SHOWN)}):"]
            lines += [f"- `{_clip(c.command, COMMAND_CHARS)}`: " + ("timed out" if c.timed_out else f"exit {c.exit_code}")
                      for c in self.commands[-COMMANDS_SHOWN:]]
        if self.tests:
            lines += ["", "Test runs (the last ones):"]
            lines += [f"- `{_clip(t.command, COMMAND_CHARS)}`: {'passed' if t.ok else 'FAILED'}, exit {t.exit_code}"
                      + (f", {t.passed} passed, {t.failed} failed" if t.passed is not None else "")
                      for t in self.tests[-TESTS_SHOWN:]]
        if self.undos:
            lines += ["", "Undone by the user (these edits are reverted):"]
            lines += [f"- restored {', '.join(paths) or 'nothing'}" for paths in self.undos]
        lines += ["", "Open todo items:"] + ([f"- [ ] {item.text}" for item in self.open_todos] or ["- (none)"])
        return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f" [... {len(text) - limit} characters not shown]"


def _listing(items: list[str]) -> list[str]:
    if not items:
        return ["- (none)"]
    shown = [f"- {item}" for item in items[:FILES_SHOWN]]
    if len(items) > FILES_SHOWN:
        shown.append(f"- ... and {len(items) - FILES_SHOWN} more")
    return shown
