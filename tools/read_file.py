from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from .base import READ_ONLY, ToolError, ToolResult
from .workspace import Workspace

DEFAULT_LIMIT = 2000
MAX_LINE_CHARS = 2000


class ReadFileArgs(BaseModel):
    path: str = Field(description="File path relative to the repository root")
    offset: int | None = Field(default=None, ge=1, description="First line to read (1-based)")
    limit: int | None = Field(default=None, ge=1, description="Number of lines to read")


class ReadFile:
    name: ClassVar[str] = "read_file"
    description: ClassVar[str] = (
        "Read a text file. Lines are numbered (number, tab, text) for reference only: do not include the "
        "numbers in edits. Use offset/limit for long files."
    )
    effects = READ_ONLY
    Args = ReadFileArgs

    def run(self, args: ReadFileArgs, workspace: Workspace) -> ToolResult:
        path = workspace.resolve(args.path)
        if not path.is_file():
            raise ToolError(f"{args.path}: no such file")
        try:
            text = workspace.read_text(path)
        except UnicodeError as exc:
            raise ToolError(f"{args.path}: cannot read as UTF-8 text ({exc})") from None
        lines = text.splitlines()
        start = (args.offset or 1) - 1
        end = start + (args.limit or DEFAULT_LIMIT)
        shown = lines[start:end]
        body = "\n".join(f"{start + i + 1}\t{line[:MAX_LINE_CHARS]}" for i, line in enumerate(shown))
        if end < len(lines):
            body += f"\n[{len(lines) - end} more lines; continue with offset={end + 1}]"
        if not lines:
            body = "(empty file)"
        return ToolResult(text=body, summary=f"{len(shown)} of {len(lines)} lines",
                          data={"path": workspace.relative(path), "lines": len(lines)})
