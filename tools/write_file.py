from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from .base import ToolError, ToolResult
from .workspace import Workspace


class WriteFileArgs(BaseModel):
    path: str = Field(description="File path relative to the repository root")
    content: str = Field(description="The complete new content of the file")


class WriteFile:
    name: ClassVar[str] = "write_file"
    description: ClassVar[str] = "Create a file or replace its whole content."
    kind = "edit"
    Args = WriteFileArgs

    def run(self, args: WriteFileArgs, workspace: Workspace) -> ToolResult:
        path = workspace.resolve(args.path)
        if path.is_dir():
            raise ToolError(f"{args.path} is a folder")
        rel = workspace.relative(path)
        action = workspace.write_text(path, args.content)
        lines = args.content.count("\n") + (0 if args.content.endswith("\n") or not args.content else 1)
        return ToolResult(text=f"{action} {rel} ({lines} lines)", data={"path": rel, "action": action}, files_changed=[rel])
