"""What an edit tool would change, computed without writing: the tool runs against a workspace whose writes
land in memory, so the approval dialog can show the exact diff before anything touches the disk."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from .base import Tool, ToolError
from .workspace import PathEscape, Workspace


@dataclass
class PreviewWorkspace(Workspace):
    """A Workspace whose writes, deletes and mode changes are recorded, never done; reads see earlier writes."""

    planned: dict[Path, str | None] = field(default_factory=dict)  # None: deleted

    def read_text(self, path: Path) -> str:
        if path in self.planned:
            text = self.planned[path]
            if text is None:
                raise FileNotFoundError(path)
            return text
        return super().read_text(path)

    def write_text(self, path: Path, text: str) -> str:
        action = "modified" if path.exists() or self.planned.get(path) is not None else "created"
        self.planned[path] = text
        self.changed[self.relative(path)] = action
        return action

    def delete(self, path: Path) -> None:
        self.planned[path] = None
        self.changed[self.relative(path)] = "deleted"

    def set_mode(self, path: Path, mode: int) -> None:
        """A preview changes no mode."""


@dataclass(frozen=True)
class EditPreview:
    diff: str = ""  # unified diff of every file the call would change; empty when it changes nothing
    files: list[str] = field(default_factory=list)
    error: str | None = None  # the refusal the tool would report instead of editing


def _before(workspace: Workspace, path: Path) -> str:
    if not path.is_file():
        return ""
    try:
        return workspace.read_text(path)
    except UnicodeError:
        return ""


def preview_edit(tool: Tool, args: BaseModel, workspace: Workspace) -> EditPreview:
    """Run an edit tool (effects without RUNS_COMMANDS) against a recording copy of `workspace`."""
    dry = PreviewWorkspace(workspace.root, test_command=workspace.test_command, repo_id=workspace.repo_id,
                           session_id=workspace.session_id, syntax_gate=workspace.syntax_gate)
    try:
        result = tool.run(args, dry)
    except (ToolError, PathEscape) as exc:
        return EditPreview(error=str(exc))
    chunks: list[str] = []
    for path, after in dry.planned.items():
        rel = dry.relative(path)
        before = _before(workspace, path)
        chunks.extend(difflib.unified_diff(before.splitlines(keepends=True), (after or "").splitlines(keepends=True),
                                           fromfile=f"a/{rel}", tofile=f"b/{rel}" if after is not None else "/dev/null"))
    diff = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in chunks)
    return EditPreview(diff=diff, files=list(dry.changed), error=result.text if result.is_error else None)
