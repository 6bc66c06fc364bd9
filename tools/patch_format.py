"""Parse the two patch forms `apply_patch` accepts into one list of file operations.

1. The context-anchored envelope (no line numbers):

       *** Begin Patch
       *** Add File: path          then every line starts with "+"
       *** Delete File: path
       *** Update File: path
       *** Move to: new/path       (optional, right after Update File)
       @@ optional scope line      (e.g. "@@ def parse(self):"; several narrow further; bare "@@" is a separator)
        context line               (" " prefix; a fully empty line counts as an empty context line)
       -removed line
       +added line
       *** End of File             (optional: this hunk ends at the end of the file)
       *** End Patch

2. Plain unified diffs (`diff -u`, `git diff`): `---`/`+++` headers (a/ and b/ prefixes and
   /dev/null understood), `@@ -l,n +l,n @@` hunks whose line numbers are used only as hints, since
   models miscount them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal


class PatchSyntaxError(Exception):
    pass


@dataclass
class Hunk:
    old: list[str] = field(default_factory=list)  # context and removed lines, in order
    new: list[str] = field(default_factory=list)  # context and added lines, in order
    scopes: list[str] = field(default_factory=list)
    at_eof: bool = False
    line_hint: int | None = None  # 1-based old-side start line, from a unified diff header
    new_missing_newline: bool = False  # "\ No newline at end of file" after the new side
    old_missing_newline: bool = False

    def changes(self) -> bool:
        return self.old != self.new


@dataclass
class FileOp:
    kind: Literal["add", "delete", "update"]
    path: str
    move_to: str | None = None
    hunks: list[Hunk] = field(default_factory=list)
    content: str = ""  # for "add"


_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@ ?(.*)$")


def parse_patch(patch: str) -> list[FileOp]:
    text = patch.replace("\r\n", "\n").strip("\n")
    lines = text.split("\n")
    if any(line.startswith(("*** Begin Patch", "*** Update File:", "*** Add File:", "*** Delete File:"))
           for line in lines):
        ops = _parse_envelope(lines)
    elif any(line.startswith("+++ ") for line in lines):
        ops = _parse_unified(lines)
    else:
        raise PatchSyntaxError("not a patch: expected '*** Begin Patch' with '*** Update File: PATH' sections, "
                               "or a unified diff with '--- a/PATH' / '+++ b/PATH' headers")
    if not ops:
        raise PatchSyntaxError("the patch contains no file operations")
    return ops


def _parse_envelope(lines: list[str]) -> list[FileOp]:
    ops: list[FileOp] = []
    hunk: Hunk | None = None
    for number, line in enumerate(lines, 1):
        if line.startswith("*** Begin Patch") or line.startswith("*** End Patch"):
            continue
        if line.startswith("*** Add File:"):
            ops.append(FileOp("add", line.split(":", 1)[1].strip()))
            hunk = None
        elif line.startswith("*** Delete File:"):
            ops.append(FileOp("delete", line.split(":", 1)[1].strip()))
            hunk = None
        elif line.startswith("*** Update File:"):
            ops.append(FileOp("update", line.split(":", 1)[1].strip()))
            hunk = None
        elif line.startswith("*** Move to:"):
            if not ops or ops[-1].kind != "update":
                raise PatchSyntaxError(f"line {number}: '*** Move to:' must follow '*** Update File:'")
            ops[-1].move_to = line.split(":", 1)[1].strip()
        elif line.startswith("*** End of File"):
            if hunk is None:
                raise PatchSyntaxError(f"line {number}: '*** End of File' outside a hunk")
            hunk.at_eof = True
        elif not ops:
            raise PatchSyntaxError(f"line {number}: expected a '*** Add/Update/Delete File:' header, got {line!r}")
        elif ops[-1].kind == "add":
            if not line.startswith("+"):
                raise PatchSyntaxError(f"line {number}: every line of an added file starts with '+', got {line!r}")
            ops[-1].content += line[1:] + "\n"
        elif ops[-1].kind == "delete":
            raise PatchSyntaxError(f"line {number}: a deleted file takes no content lines")
        elif line.startswith("@@"):
            scope = line[2:].strip()
            if hunk is None or hunk.old or hunk.new:
                hunk = Hunk()
                ops[-1].hunks.append(hunk)
            if scope:
                hunk.scopes.append(scope)
        else:
            if hunk is None or hunk.at_eof:
                hunk = Hunk()
                ops[-1].hunks.append(hunk)
            _hunk_line(hunk, line, number)
    for op in ops:
        if op.kind == "update" and not op.move_to and not any(h.changes() for h in op.hunks):
            raise PatchSyntaxError(f"'*** Update File: {op.path}' has no '-' or '+' lines")
    return ops


def _hunk_line(hunk: Hunk, line: str, number: int) -> None:
    marker, body = (line[:1], line[1:]) if line else (" ", "")
    if marker == " ":
        hunk.old.append(body)
        hunk.new.append(body)
    elif marker == "-":
        hunk.old.append(body)
    elif marker == "+":
        hunk.new.append(body)
    else:
        raise PatchSyntaxError(f"line {number}: hunk lines start with ' ', '-' or '+', got {line!r}")


def _strip_prefix(raw: str) -> str | None:
    name = raw.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    return name[2:] if name.startswith(("a/", "b/")) else name


def _parse_unified(lines: list[str]) -> list[FileOp]:
    ops: list[FileOp] = []
    hunk: Hunk | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:])
            if old is None and new is None:
                raise PatchSyntaxError(f"line {i + 1}: both sides are /dev/null")
            if old is None:
                ops.append(FileOp("add", new or ""))
            elif new is None:
                ops.append(FileOp("delete", old))
            else:
                ops.append(FileOp("update", old, move_to=new if new != old else None))
            hunk = None
            i += 2
            continue
        header = _HUNK_HEADER.match(line)
        if header and ops:
            hunk = Hunk(line_hint=int(header.group(1)), scopes=[])
            ops[-1].hunks.append(hunk)
        elif hunk is not None and line.startswith("\\"):
            # "\ No newline at end of file" applies to the side(s) of the line before it.
            hunk.new_missing_newline |= lines[i - 1].startswith(("+", " "))
            hunk.old_missing_newline |= lines[i - 1].startswith(("-", " "))
        elif hunk is not None and (line[:1] in (" ", "-", "+") or line == ""):
            _hunk_line(hunk, line, i + 1)
        else:
            hunk = None  # `diff --git`, `index`, mode lines and prose between files
        i += 1
    for op in ops:
        if op.kind == "add":
            body = [h.new for h in op.hunks]
            op.content = "".join(x + "\n" for part in body for x in part)
            if op.hunks and op.hunks[-1].new_missing_newline:
                op.content = op.content[:-1]
            op.hunks = []
    return ops
