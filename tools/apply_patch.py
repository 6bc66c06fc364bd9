"""`apply_patch`: add, update, delete and move files from one patch, all or nothing.

Every hunk is located in the original text of its file with the graded stages of `edit_match`,
searching after the previous hunk (and after any `@@` scope lines); line numbers of unified diffs
only break ties. Nothing is written until every operation of the patch has been planned; if a
write then fails, the files already written are put back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from .base import EDITS, ToolError, ToolResult
from .edit_apply import code_pairs
from .edit_feedback import EditRefused, ambiguous, not_found, over_broad
from .edit_file import gate
from .edit_match import Match, first_stage, fold_unicode, substance
from .edit_text import Lines, Reindent, detect_indent
from .patch_format import FileOp, Hunk, PatchSyntaxError, parse_patch
from .workspace import PathEscape, Workspace

SCOPE_HINT = "Add an '@@ <line>' scope line naming the enclosing def/class/function, or more context lines."


@dataclass
class FileResult:
    text: str
    stages: list[str] = field(default_factory=list)  # per hunk: the stage that located it


def _scope_index(lines: list[str], scope: str, start: int) -> int | None:
    wanted = fold_unicode(scope)
    for i in range(start, len(lines)):
        have = fold_unicode(lines[i])
        if have == wanted or (len(wanted) >= 4 and have.startswith(wanted)):
            return i
    return None


def _locate(lines: list[str], hunk: Hunk, start: int, label: str) -> Match | None:
    """Where a hunk's old lines are (None: the hunk is already applied), or a refusal."""
    for scope in hunk.scopes:
        index = _scope_index(lines, scope, start)
        if index is None:
            raise EditRefused(f"{label}: scope line '@@ {scope}' not found after line {start}. Use a line copied "
                              "from the file (e.g. the enclosing def or class line).", {"reason": "scope_not_found"})
        start = index + 1
    matches = first_stage(lines, hunk.old, start)
    if not matches and start > 0 and not hunk.scopes:
        matches = first_stage(lines, hunk.old, 0)  # hunks given out of order still apply when unique
    if hunk.at_eof and any(m.end == len(lines) for m in matches):
        matches = [m for m in matches if m.end == len(lines)]
    if not matches:
        new_there = first_stage(lines, hunk.new, 0) if substance(hunk.new) >= 3 else []
        if len(new_there) == 1:
            return None
        raise not_found(f"{label}: the context and '-' lines", lines, hunk.old)
    if len(matches) > 1:
        if hunk.line_hint is None:
            raise ambiguous(f"{label}: the context and '-' lines", [m.start for m in matches], matches[0].stage,
                            SCOPE_HINT)
        matches.sort(key=lambda m: abs(m.start - (hunk.line_hint - 1)))
    return matches[0]


def apply_hunks(text: str, hunks: list[Hunk], path: str) -> FileResult:
    doc = Lines.parse(text, path)
    lines = doc.lines
    style = detect_indent([x for h in hunks for x in h.old + h.new])
    planned: list[tuple[int, int, list[str]]] = []
    stages: list[str] = []
    cursor = 0
    final_newline = doc.final_newline
    for number, hunk in enumerate(hunks, 1):
        label = f"{path} hunk {number}"
        if not any(line.strip() for line in hunk.old):
            at = _insertion_point(lines, hunk, cursor, label)
            planned.append((at, at + len(hunk.old), hunk.new))
            stages.append("insert")
            continue
        match = _locate(lines, hunk, cursor, label)
        if match is None:
            stages.append("already_applied")
            continue
        if abs(substance(lines[match.start:match.end]) - substance(hunk.old)) > 80 and match.stage == "block_anchor":
            raise over_broad(label, match.start, match.end, len(hunk.old))
        if any(match.start < end and start < match.end for start, end, _ in planned):
            raise EditRefused(f"{label} overlaps an earlier hunk (lines {match.start + 1}-{match.end}); merge them",
                              {"reason": "overlap"})
        written, found = code_pairs([match], doc)
        reindent = Reindent.learn(written, found, style, doc.style)
        planned.append((match.start, match.end,
                        reindent.apply_all(hunk.new, doc.fences, doc.open_string_at(match.start))))
        stages.append(match.stage)
        cursor = match.end
        if match.end == len(lines):
            if hunk.new_missing_newline:
                final_newline = False
            elif hunk.old_missing_newline:
                final_newline = True
    out = list(lines)
    for start, end, new in sorted(planned, key=lambda p: p[0], reverse=True):
        out[start:end] = new
    return FileResult(Lines(out, final_newline or (not lines and bool(out)), doc.eol, doc.style).render(), stages)


def _insertion_point(lines: list[str], hunk: Hunk, cursor: int, label: str) -> int:
    if hunk.at_eof:
        return len(lines)
    if hunk.scopes:
        index = cursor
        for scope in hunk.scopes:
            found = _scope_index(lines, scope, index)
            if found is None:
                raise EditRefused(f"{label}: scope line '@@ {scope}' not found", {"reason": "scope_not_found"})
            index = found + 1
        return index
    if hunk.line_hint is not None:
        return min(len(lines), hunk.line_hint if not hunk.old else hunk.line_hint - 1)
    raise EditRefused(f"{label} has only '+' lines and nothing to anchor them; add unchanged context lines "
                      "around the insertion, an '@@ <line>' scope line, or '*** End of File'",
                      {"reason": "no_anchor"})


class ApplyPatchArgs(BaseModel):
    patch: str = Field(description="A '*** Begin Patch' ... '*** End Patch' envelope, or a unified diff")


class ApplyPatch:
    name: ClassVar[str] = "apply_patch"
    description: ClassVar[str] = (
        "Apply a patch that adds, updates, deletes or moves files. Preferred form:\n"
        "*** Begin Patch\n*** Update File: path/to/file.py\n@@ def enclosing_function(...):\n"
        " unchanged context line\n-removed line\n+added line\n*** End Patch\n"
        "Also '*** Add File: p' (lines start with '+'), '*** Delete File: p', '*** Move to: p' after Update. "
        "No line numbers; 1-3 context lines around each change. Unified diffs are accepted too. "
        "Either every file changes or none does."
    )
    effects = EDITS
    Args = ApplyPatchArgs

    def run(self, args: ApplyPatchArgs, workspace: Workspace) -> ToolResult:
        try:
            ops = parse_patch(args.patch)
        except PatchSyntaxError as exc:
            raise ToolError(f"patch not applied: {exc}") from None
        try:
            plan, report = _plan(ops, workspace)
        except EditRefused as exc:
            raise ToolError(f"patch not applied (no file was changed): {exc}") from None
        notes, extra = [], {}
        originals = {path: _current(path, workspace) for path in plan}
        for path, content in plan.items():
            if content is not None:
                note, data = gate(workspace, workspace.relative(path), originals[path], content)
                notes.append(note)
                extra.update(data)
        _write_all(plan, originals, report.pop("modes"), workspace)
        data: dict[str, Any] = {"files": report, **extra}
        return ToolResult(text="\n".join(["patch applied:"] + [f"  {line}" for line in report["lines"]]) +
                          "".join(notes), data=data)


def _current(path: Path, workspace: Workspace) -> str | None:
    if not path.exists():
        return None
    if not path.is_file():
        raise ToolError(f"patch not applied: {workspace.relative(path)} is a folder, not a file")
    try:
        return workspace.read_text(path)
    except UnicodeError as exc:
        raise ToolError(f"patch not applied: {workspace.relative(path)} cannot be edited ({exc})") from None


def _plan(ops: list[FileOp], workspace: Workspace) -> tuple[dict[Path, str | None], dict[str, Any]]:
    plan: dict[Path, str | None] = {}
    lines: list[str] = []
    stages: dict[str, list[str]] = {}
    modes: dict[Path, int] = {}

    def state(path: Path) -> str | None:
        return plan[path] if path in plan else _current(path, workspace)

    for op in ops:
        path = workspace.resolve(op.path)
        workspace.refuse_protected(path)  # before anything is written: the patch is refused whole
        rel = workspace.relative(path)
        now = state(path)
        if op.kind == "add":
            if now is not None and now != op.content:
                raise EditRefused(f"cannot add {rel}: it already exists (use '*** Update File: {rel}')",
                                  {"reason": "exists"})
            plan[path] = op.content
            lines.append(f"A {rel}" + (" (already there)" if now == op.content else ""))
        elif op.kind == "delete":
            plan[path] = None
            lines.append(f"D {rel}" + (" (already gone)" if now is None else ""))
        else:
            if now is None:
                raise EditRefused(f"cannot update {rel}: no such file (use '*** Add File: {rel}')",
                                  {"reason": "missing"})
            result = apply_hunks(now, op.hunks, rel) if op.hunks else None
            text = result.text if result else now
            stages[rel] = result.stages if result else []
            relaxed = [f"hunk {k + 1}: {s.replace('_', ' ')}" for k, s in enumerate(result.stages if result else [])
                       if s != "exact"]
            suffix = f" ({'; '.join(relaxed)})" if relaxed else ""
            if op.move_to:
                dest = workspace.resolve(op.move_to)
                workspace.refuse_protected(dest)
                if state(dest) is not None and state(dest) != text:
                    raise EditRefused(f"cannot move {rel} to {workspace.relative(dest)}: the destination exists",
                                      {"reason": "exists"})
                plan[path], plan[dest] = None, text
                modes[dest] = path.stat().st_mode & 0o7777  # a moved script stays executable
                lines.append(f"R {rel} -> {workspace.relative(dest)}{suffix}")
            else:
                plan[path] = text
                lines.append(f"M {rel}{suffix}")
    return plan, {"lines": lines, "stages": stages, "modes": modes}


def _write_all(plan: dict[Path, str | None], originals: dict[Path, str | None], modes: dict[Path, int],
               workspace: Workspace) -> list[str]:
    modes = {**{p: p.stat().st_mode & 0o7777 for p in plan if p.exists()}, **modes}
    done: list[Path] = []
    try:
        for path, content in plan.items():
            if content == originals[path]:
                continue
            if content is None:
                workspace.delete(path)
            else:
                workspace.write_text(path, content)
                if path in modes:
                    workspace.set_mode(path, modes[path])
            done.append(path)
    except (OSError, PathEscape) as exc:
        for path in done:  # all or nothing: put back what this patch already wrote
            if originals[path] is None:
                workspace.delete(path)
            else:
                workspace.write_text(path, originals[path])
                workspace.set_mode(path, modes[path])
        raise ToolError(f"patch not applied: writing {workspace.relative(path)} failed ({exc}); "
                        "files already written were restored") from None
    return [workspace.relative(p) for p in done]
