"""What every tool is: a pydantic args model, a JSON schema derived from it, declared effects, and a `run`
that returns a ToolResult.

A tool signals a problem the model can act on by raising `ToolError`; the toolbox turns it into an
error result, so no tool failure ever leaves the agent loop as an exception. The loop and the permission
policy know a tool only by its `effects` (docs/architecture.md, "Tools and effects"), never by its name.
"""

from __future__ import annotations

import copy
import weakref
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, Field

from .workspace import Workspace


class Effect(StrEnum):
    READS_FILES = "reads_files"
    READS_MEMORY = "reads_memory"
    CHANGES_FILES = "changes_files"  # writes through the workspace (checkpointed, reported as file changes)
    RUNS_COMMANDS = "runs_commands"  # a process that may do anything in the repository (checkpointed)
    RUNS_TESTS = "runs_tests"  # the repository's test command; its result carries `tests`
    RUNS_SHELL = "runs_shell"  # its `command` argument is one shell command line (headless may match it)
    CHANGES_MEMORY = "changes_memory"  # its result carries `memory`
    DESTRUCTIVE = "destructive"  # cannot be undone by a checkpoint (e.g. forget): approved like an edit


Effects = frozenset[Effect]
READ_ONLY: Effects = frozenset({Effect.READS_FILES})
EDITS: Effects = frozenset({Effect.READS_FILES, Effect.CHANGES_FILES})

FileAction = Literal["created", "modified", "deleted"]


class ToolError(Exception):
    """A failure reported back to the model as the tool's result; `data` reaches the UI and reports."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data or {}


class MemoryChange(BaseModel):
    action: Literal["remembered", "forgotten"]
    item_ids: list[str]
    replaces: str | None = None  # the text of the value the first item superseded ("replaces: ...", undoable)


class TestRun(BaseModel):
    __test__ = False  # not a pytest class
    command: str
    exit_code: int
    passed: int | None
    failed: int | None
    ok: bool
    outcome: str = "failed"  # passed | failed | could_not_run (the runner or the collection failed)
    environment: str = ""  # which interpreter/tool ran them
    reason: str | None = None  # why they could not run

class CommandRun(BaseModel):
    """A shell command a RUNS_COMMANDS tool ran, for the task state the loop keeps."""
    command: str
    exit_code: int
    timed_out: bool = False


class TodoItem(BaseModel):
    text: str
    done: bool = False


class ToolResult(BaseModel):
    text: str  # what the model reads
    summary: str = ""  # one line for the UI; the first line of `text` when empty
    data: dict[str, Any] = Field(default_factory=dict)  # structured detail for the UI and reports
    is_error: bool = False
    # The one channel for file changes: the Toolbox fills it from the workspace's record of its writes.
    file_changes: dict[str, FileAction] = Field(default_factory=dict)  # repo-relative path -> action
    memory: MemoryChange | None = None  # what a CHANGES_MEMORY tool changed
    tests: TestRun | None = None  # what a RUNS_TESTS tool ran
    command: CommandRun | None = None  # what a RUNS_COMMANDS tool ran
    todos: list[TodoItem] | None = None  # the whole todo list, from a tool that keeps it
    files_read: list[str] = Field(default_factory=list)  # repo-relative; the Toolbox fills it from the workspace

    @property
    def files_changed(self) -> list[str]:
        return list(self.file_changes)


class Tool(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    effects: ClassVar[Effects]
    Args: ClassVar[type[BaseModel]]

    def run(self, args: Any, workspace: Workspace) -> ToolResult: ...


# Built once per Args class, not per session (pydantic takes ~1 ms a tool). Weak keys: an MCP tool's Args class is
# made per server tool, and goes with its session.
_PARAMETERS: weakref.WeakKeyDictionary[type[BaseModel], dict[str, Any]] = weakref.WeakKeyDictionary()


def _parameters(args: type[BaseModel]) -> dict[str, Any]:
    if (parameters := _PARAMETERS.get(args)) is None:
        parameters = args.model_json_schema()
        parameters.pop("title", None)
        for prop in parameters.get("properties", {}).values():
            prop.pop("title", None)
        _PARAMETERS[args] = parameters
    return parameters


def openai_schema(tool: type[Tool] | Tool) -> dict[str, Any]:
    parameters = copy.deepcopy(_parameters(tool.Args))  # the caller's to change
    return {"type": "function", "function": {"name": tool.name, "description": tool.description, "parameters": parameters}}
