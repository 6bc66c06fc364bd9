"""`edit_file`: replace one quoted block in a file, with graded matching and refusals that teach."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from . import syntax_gate
from .base import EDITS, ToolError, ToolResult
from .edit_apply import EditOutcome, apply_edit
from .edit_feedback import EditRefused
from .workspace import Workspace


class EditFileArgs(BaseModel):
    path: str = Field(description="File path relative to the repository root")
    old_string: str = Field(description="Exact text to replace (include enough context to be unique)")
    new_string: str = Field(description="Replacement text")
    replace_all: bool = Field(default=False, description="Replace every occurrence instead of exactly one")


def read_for_edit(workspace: Workspace, raw_path: str) -> tuple[Path, str]:
    path = workspace.resolve(raw_path)
    if not path.is_file():
        raise ToolError(f"{raw_path}: no such file (use write_file to create it)")
    try:
        return path, workspace.read_text(path)
    except UnicodeError as exc:
        raise ToolError(f"{raw_path}: cannot edit ({exc})") from None


def gate(workspace: Workspace, rel: str, before: str | None, after: str) -> tuple[str, dict[str, Any]]:
    """The syntax-gate note for the result (empty when clean); raises in refuse mode."""
    problem = syntax_gate.check(rel, before, after, workspace.syntax_gate)
    if problem is None:
        return "", {}
    if workspace.syntax_gate == "refuse":
        raise ToolError(f"edit not applied: it would break the syntax of {rel}, which parsed cleanly before. "
                        f"{problem.describe(rel)}")
    note = (f"\nwarning: {rel} parsed cleanly before this edit and now has a syntax error; fix it next. "
            f"{problem.describe(rel)}")
    return note, {"syntax_error": {"line": problem.line, "column": problem.column, "token": problem.token}}


def summary(rel: str, outcomes: list[EditOutcome]) -> str:
    if all(o.already_applied for o in outcomes):
        return f"{rel}: no change; the new text is already there at line {outcomes[0].line} (already applied)"
    parts = []
    for o in outcomes:
        how = "" if o.stage in ("exact", "already_applied") else f", matched after relaxing {o.stage.replace('_', ' ')}"
        what = "already applied" if o.already_applied else f"{o.replacements} replacement{'s' * (o.replacements != 1)}"
        parts.append(f"{what}{how}" if len(outcomes) == 1 else f"line {o.line}: {what}{how}")
    return f"edited {rel} ({'; '.join(parts)})"


class EditFile:
    name: ClassVar[str] = "edit_file"
    description: ClassVar[str] = (
        "Replace old_string with new_string in a file. old_string should be copied from the file and match "
        "one place (or set replace_all); small whitespace/indentation drift is tolerated. Read the file first."
    )
    effects = EDITS
    Args = EditFileArgs

    def run(self, args: EditFileArgs, workspace: Workspace) -> ToolResult:
        path, text = read_for_edit(workspace, args.path)
        rel = workspace.relative(path)
        try:
            outcome = apply_edit(text, args.old_string, args.new_string, args.replace_all, rel)
        except EditRefused as exc:
            raise ToolError(f"{rel}: {exc}") from None
        data = {"path": rel, "replacements": outcome.replacements, "stage": outcome.stage, "line": outcome.line}
        if outcome.text == text:
            return ToolResult(text=summary(rel, [outcome]), data=data)
        note, extra = gate(workspace, rel, text, outcome.text)
        workspace.write_text(path, outcome.text)
        return ToolResult(text=summary(rel, [outcome]) + note, data={**data, **extra})
