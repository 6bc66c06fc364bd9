"""`multi_edit`: several edits to one file in one call, applied in order, all or nothing."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from .base import EDITS, ToolError, ToolResult
from .edit_apply import apply_edits
from .edit_feedback import EditRefused
from .edit_file import gate, read_for_edit, summary
from .workspace import Workspace


class OneEdit(BaseModel):
    old_string: str = Field(description="Text to replace, copied from the file (after earlier edits of this call)")
    new_string: str = Field(description="Replacement text")
    replace_all: bool = Field(default=False, description="Replace every occurrence instead of exactly one")


class MultiEditArgs(BaseModel):
    path: str = Field(description="File path relative to the repository root")
    edits: list[OneEdit] = Field(min_length=1, description="Edits applied in order; each sees the previous ones")


class MultiEdit:
    name: ClassVar[str] = "multi_edit"
    description: ClassVar[str] = (
        "Apply several old_string -> new_string edits to one file, in order. If any edit cannot be applied, "
        "none is and the error says which one failed."
    )
    effects = EDITS
    Args = MultiEditArgs

    def run(self, args: MultiEditArgs, workspace: Workspace) -> ToolResult:
        path, text = read_for_edit(workspace, args.path)
        rel = workspace.relative(path)
        try:
            outcomes = apply_edits(text, [(e.old_string, e.new_string, e.replace_all) for e in args.edits], rel)
        except EditRefused as exc:
            raise ToolError(f"{rel}: {exc}") from None
        new_text = outcomes[-1].text
        data = {"path": rel, "edits": [{"stage": o.stage, "line": o.line, "replacements": o.replacements}
                                       for o in outcomes]}
        if new_text == text:
            return ToolResult(text=summary(rel, outcomes), data=data)
        note, extra = gate(workspace, rel, text, new_text)
        workspace.write_text(path, new_text)
        return ToolResult(text=summary(rel, outcomes) + note, data={**data, **extra})
