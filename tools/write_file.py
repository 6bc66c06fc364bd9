from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, Field

from .base import EDITS, ToolError, ToolResult
from .edit_file import gate
from .workspace import Workspace


class WriteFileArgs(BaseModel):
    path: str = Field(description="File path relative to the repository root")
    content: str = Field(description="The complete new content of the file")


class WriteFile:
    name: ClassVar[str] = "write_file"
    description: ClassVar[str] = "Create a file or replace its whole content."
    effects = EDITS
    Args = WriteFileArgs

    def run(self, args: WriteFileArgs, workspace: Workspace) -> ToolResult:
        path = workspace.resolve(args.path)
        if path.is_dir():
            raise ToolError(f"{args.path} is a folder")
        rel = workspace.relative(path)
        before = _readable_text(workspace, path)
        note, gate_data = gate(workspace, rel, before, args.content)
        action = workspace.write_text(path, args.content)
        lines = args.content.count("\n") + (0 if args.content.endswith("\n") or not args.content else 1)
        return ToolResult(text=f"{action} {rel} ({lines} lines){note}", data={"path": rel, "action": action, **gate_data})


def _readable_text(workspace: Workspace, path: Path) -> str | None:
    """The current text, for the syntax gate's before/after comparison; None for a new or unreadable file."""
    if not path.is_file():
        return None
    try:
        return workspace.read_text(path)
    except UnicodeError:
        return None
