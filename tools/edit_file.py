from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from .base import ToolError, ToolResult
from .edit_match import EditRefused, replace_exact
from .workspace import Workspace


class EditFileArgs(BaseModel):
    path: str = Field(description="File path relative to the repository root")
    old_string: str = Field(description="Exact text to replace (include enough context to be unique)")
    new_string: str = Field(description="Replacement text")
    replace_all: bool = Field(default=False, description="Replace every occurrence instead of exactly one")


class EditFile:
    name: ClassVar[str] = "edit_file"
    description: ClassVar[str] = (
        "Replace old_string with new_string in a file. old_string must match exactly one place "
        "(or use replace_all). Read the file first."
    )
    kind = "edit"
    Args = EditFileArgs

    def run(self, args: EditFileArgs, workspace: Workspace) -> ToolResult:
        path = workspace.resolve(args.path)
        if not path.is_file():
            raise ToolError(f"{args.path}: no such file (use write_file to create it)")
        try:
            text = workspace.read_text(path)
        except UnicodeError as exc:
            raise ToolError(f"{args.path}: cannot edit ({exc})") from None
        try:
            new_text, count = replace_exact(text, args.old_string, args.new_string, args.replace_all)
        except EditRefused as exc:
            raise ToolError(f"{args.path}: {exc}") from None
        rel = workspace.relative(path)
        if new_text == text:
            return ToolResult(text=f"{rel}: no change (already applied)", data={"path": rel, "replacements": 0})
        workspace.write_text(path, new_text)
        return ToolResult(text=f"edited {rel} ({count} replacement{'s' if count != 1 else ''})",
                          data={"path": rel, "replacements": count}, files_changed=[rel])
