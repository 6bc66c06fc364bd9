"""The scripted model of the gold replay: turns (stub, reference solution) into tool calls per edit format,
and perturbs the file or the calls the way real models drift.

File perturbations change the file on disk while the model keeps writing "clean" text: `crlf`,
`tabs` (file indented with tabs, model writes spaces), `trailing_ws` (file lines carry trailing
spaces the model does not quote), `dup_anchor` (a copy of the stub sits at the end of the file, so
a block quoted with too little context matches twice; the model must be told where, and retries
with more context). Call perturbations keep the file and bend what the model sends: `indent_shift`
(every quoted line one level too deep or too shallow), `elided` (unchanged lines replaced by a
`...` comment in edit blocks, context lines dropped from patch hunks), `unicode` (typographic quotes
in the quoted old text), `stale_line` (one middle line of a quote of 3+ lines as the model remembers it
from before: one character different), `resend` (the same calls sent twice, as a model does when it missed the first
result: the second time must succeed without changing anything).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from dsv4.tools.edit_text import fences_for, inside_strings

FORMATS = ("write_file", "edit_file", "multi_edit", "apply_patch", "unified_diff")
PERTURBATIONS = ("clean", "indent_shift", "tabs", "crlf", "trailing_ws", "dup_anchor", "elided", "unicode", "stale_line",
                 "resend")
FILE_PERTURBATIONS = ("crlf", "tabs", "trailing_ws", "dup_anchor")
LANGS = {"python": {"unit": 4, "marker": "# ..."}, "javascript": {"unit": 2, "marker": "// ..."}}

Hunk = list[tuple[str, str]]  # (" " | "-" | "+", line)


@dataclass(frozen=True)
class Exercise:
    lang: str
    name: str
    folder: Path
    solution: str  # file name of the stub the model edits
    stub: str
    gold: str


def load_exercises(root: Path, langs: tuple[str, ...], limit: int | None = None) -> list[Exercise]:
    found = []
    for lang in langs:
        folders = sorted((root / lang / "exercises" / "practice").iterdir())
        for folder in folders[:limit]:
            files = json.loads((folder / ".meta" / "config.json").read_text())["files"]
            solution, example = files["solution"][0], files["example"][0]
            found.append(Exercise(lang, folder.name, folder, solution, (folder / solution).read_text(),
                                  (folder / example).read_text()))
    return found


# -- file perturbations ---------------------------------------------------------------------------------
def to_tabs(text: str, unit: int, suffix: str) -> str:
    """Leading spaces to tabs, as an editor's "convert indentation" would; lines inside multi-line strings
    are content and stay as they are (the control run checks the converted gold still passes)."""
    lines = text.split("\n")
    keep = inside_strings(lines, fences_for(suffix))

    def convert(match: re.Match[str]) -> str:
        levels, rest = divmod(len(match.group(0)), unit)
        return "\t" * levels + " " * rest
    return "\n".join(line if k in keep else re.sub(r"^ +", convert, line) for k, line in enumerate(lines))


def dup_tail(ex: Exercise) -> str | None:
    if ex.lang == "python":
        quote = '"""' if '"""' not in ex.stub else "'''" if "'''" not in ex.stub else None
        return None if quote is None else f"\n\n_DUPLICATE = r{quote}\n{ex.stub}{quote}\n"
    if "`" in ex.stub or "${" in ex.stub:
        return None
    return f"\n\nvoid String.raw`\n{ex.stub}`;\n"  # an expression statement: valid in ES modules and CommonJS


def with_trailing_ws(text: str) -> str:
    lines = text.split("\n")
    return "\n".join(line + "  " if k % 2 == 0 and line.strip() else line for k, line in enumerate(lines))


def file_variant(ex: Exercise, text: str, perturbation: str) -> str | None:
    if perturbation == "crlf":
        return text.replace("\n", "\r\n")
    if perturbation == "tabs":
        return to_tabs(text, LANGS[ex.lang]["unit"], ex.solution)
    if perturbation == "dup_anchor":
        tail = dup_tail(ex)
        return None if tail is None else text + tail
    return text


# -- from two texts to hunks and calls ------------------------------------------------------------------
def hunks(a: str, b: str, context: int) -> list[tuple[int, int, Hunk]]:
    """Hunks of a line diff: (old start index, new start index, tagged lines)."""
    al, bl = a.splitlines(), b.splitlines()
    out = []
    for group in difflib.SequenceMatcher(None, al, bl, autojunk=False).get_grouped_opcodes(context):
        tagged: Hunk = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                tagged += [(" ", x) for x in al[i1:i2]]
            else:
                tagged += [("-", x) for x in al[i1:i2]] + [("+", x) for x in bl[j1:j2]]
        out.append((group[0][1], group[0][3], tagged))
    return out


def _count(lines: list[str], block: list[str]) -> int:
    m = len(block)
    return sum(1 for i in range(len(lines) - m + 1) if lines[i:i + m] == block)


def unique_hunks(a: str, b: str, unique_in: str, start_context: int = 1) -> list[tuple[int, int, Hunk]]:
    """Hunks with the least context (from start_context up) whose old side is unique in `unique_in`."""
    lines = unique_in.splitlines()
    for context in range(start_context, 40):
        found = hunks(a, b, context)
        if all(_count(lines, [x for t, x in h if t != "+"]) == 1 for _, _, h in found):
            return found
    return [(0, 0, [("-", x) for x in a.splitlines()] + [("+", x) for x in b.splitlines()])]


def old_new(h: Hunk) -> tuple[list[str], list[str]]:
    return [x for t, x in h if t != "+"], [x for t, x in h if t != "-"]


def block(lines: list[str]) -> str:
    return "".join(x + "\n" for x in lines)


def calls_for(fmt: str, path: str, b: str, found: list[tuple[int, int, Hunk]]) -> list[tuple[str, dict]]:
    if fmt == "write_file":
        return [("write_file", {"path": path, "content": b})]
    if fmt in ("edit_file", "multi_edit"):
        edits = [{"old_string": block(old), "new_string": block(new)} for old, new in (old_new(h) for _, _, h in found)]
        if fmt == "multi_edit":
            return [("multi_edit", {"path": path, "edits": edits})]
        return [("edit_file", {"path": path, **e}) for e in edits]
    if fmt == "apply_patch":
        body = ["*** Begin Patch", f"*** Update File: {path}"]
        for _, _, h in found:
            body += ["@@"] + [t + x for t, x in h]
        return [("apply_patch", {"patch": "\n".join(body + ["*** End Patch"]) + "\n"})]
    body = [f"--- a/{path}", f"+++ b/{path}"]
    for i, j, h in found:
        old, new = old_new(h)
        body += [f"@@ -{i + 1},{len(old)} +{j + 1},{len(new)} @@"] + [t + x for t, x in h]
    return [("apply_patch", {"patch": "\n".join(body) + "\n"})]


# -- call perturbations (on hunks, before they become calls) ------------------------------------------
def shift(found: list[tuple[int, int, Hunk]], unit: int, deeper: bool, a: str, b: str,
          suffix: str) -> list[tuple[int, int, Hunk]]:
    """Every quoted code line one level deeper (or shallower); lines inside multi-line strings are content,
    which a model drifting in indentation still copies as it is."""
    pad = " " * unit
    fences = fences_for(suffix)
    keep_a, keep_b = inside_strings(a.splitlines(), fences), inside_strings(b.splitlines(), fences)
    out = []
    for i, j, h in found:
        olds = [x for t, x in h if t != "+" and x.strip()]
        dedent = not deeper and olds and all(x.startswith(pad) for x in olds)
        bent: Hunk = []
        ai, bj = i, j
        for t, x in h:
            content = (t != "+" and ai in keep_a) or (t != "-" and bj in keep_b)
            ai += t != "+"
            bj += t != "-"
            if content or not x.strip():
                bent.append((t, x))
            elif dedent:
                bent.append((t, x[len(pad):] if x.startswith(pad) else x.lstrip(" ")))
            else:
                bent.append((t, pad + x))
        out.append((i, j, bent))
    return out


def elide_blocks(found: list[tuple[int, int, Hunk]], marker: str) -> tuple[list[tuple[int, int, Hunk]], bool]:
    """Edit blocks: an unchanged middle run of >= 3 lines becomes one marker line on both sides; else a
    long old side keeps only its first and last two lines (the model asks to replace the whole range)."""
    out, changed = [], False
    for i, j, h in found:
        runs = [k for k in range(1, len(h) - 3) if all(t == " " for t, _ in h[k:k + 3])
                and any(t != " " for t, _ in h[:k]) and any(t != " " for t, _ in h[k + 3:])]
        if runs:
            k = runs[0]
            indent = h[k][1][: len(h[k][1]) - len(h[k][1].lstrip())]
            out.append((i, j, h[:k] + [(" ", indent + marker)] + h[k + 3:]))
            changed = True
            continue
        old, _ = old_new(h)
        if len(old) >= 5:
            indent = old[2][: len(old[2]) - len(old[2].lstrip())]
            new = [x for t, x in h if t != "-"]
            kept = old[:2] + [indent + marker] + old[-2:]
            out.append((i, j, [("-", x) for x in kept] + [("+", x) for x in new]))
            changed = True
        else:
            out.append((i, j, h))
    return out, changed


def drop_context(found: list[tuple[int, int, Hunk]]) -> tuple[list[tuple[int, int, Hunk]], bool]:
    out, changed = [], False
    for i, j, h in found:
        if not any(t == "-" for t, _ in h):
            out.append((i, j, h))
            continue
        first = next(k for k, (t, _) in enumerate(h) if t != " ")
        last = max(k for k, (t, _) in enumerate(h) if t != " ")
        changed |= first > 0 or last < len(h) - 1
        out.append((i + first, j + first, h[first:last + 1]))
    return out, changed


_TYPOGRAPHIC = str.maketrans({"'": "\u2019", '"': "\u201d"})


def typographic(found: list[tuple[int, int, Hunk]]) -> tuple[list[tuple[int, int, Hunk]], bool]:
    """Curly quotes on the old side only: a context line that changes becomes a '-' curly / '+' plain pair."""
    out, changed = [], False
    for i, j, h in found:
        bent: Hunk = []
        for t, x in h:
            curly = x.translate(_TYPOGRAPHIC)
            if t == "+" or curly == x:
                bent.append((t, x))
            elif t == "-":
                bent.append(("-", curly))
            else:
                bent += [("-", curly), ("+", x)]
            changed |= t != "+" and curly != x
        out.append((i, j, bent))
    return out, changed


def _stale(line: str) -> str:
    """The line with its last letter or digit changed, as a model misremembers an identifier or a number."""
    for k in range(len(line) - 1, -1, -1):
        ch = line[k]
        if ch.isalnum():
            swap = "1" if ch.isdigit() and ch != "1" else "2" if ch.isdigit() else "x" if ch != "x" else "y"
            return line[:k] + swap + line[k + 1:]
    return line


def stale_middle(found: list[tuple[int, int, Hunk]]) -> tuple[list[tuple[int, int, Hunk]], bool]:
    """In hunks quoting 3+ old lines, one middle old line differs from the file (first and last stay)."""
    out, changed = [], False
    for i, j, h in found:
        olds = [k for k, (t, _) in enumerate(h) if t != "+"]
        middle = [k for k in olds[1:-1] if sum(ch.isalnum() for ch in h[k][1]) >= 8]
        if len(olds) < 3 or not middle:
            out.append((i, j, h))
            continue
        k = middle[len(middle) // 2]
        t, x = h[k]
        bent = h[:k] + ([("-", _stale(x))] if t == "-" else [("-", _stale(x)), ("+", x)]) + h[k + 1:]
        out.append((i, j, bent))
        changed = True
    return out, changed


@dataclass
class Case:
    exercise: Exercise
    fmt: str
    perturbation: str
    start: str  # the file on disk before the edits
    expected: str  # the gold solution in the same file form
    calls: list[tuple[str, dict]]


def make_case(ex: Exercise, fmt: str, perturbation: str, index: int) -> Case | None:
    """One replay case, or None when the perturbation does not apply to this exercise and format."""
    if fmt == "write_file" and perturbation != "clean":
        return None  # a whole-file write has no old text to drift
    start = file_variant(ex, ex.stub, perturbation)
    expected = file_variant(ex, ex.gold, perturbation)
    if start is None or expected is None:
        return None
    if perturbation == "trailing_ws":
        start = with_trailing_ws(ex.stub)
    view_a, view_b = (start, expected) if perturbation == "dup_anchor" else (ex.stub, ex.gold)
    # With dup_anchor the model does not notice the copy: its context is only unique within the stub.
    found = unique_hunks(view_a, view_b, ex.stub)
    lang = LANGS[ex.lang]
    if perturbation == "indent_shift":
        found = shift(found, lang["unit"], index % 2 == 0, view_a, view_b, ex.solution)
    elif perturbation == "elided":
        found, changed = (elide_blocks(found, lang["marker"]) if fmt in ("edit_file", "multi_edit")
                          else drop_context(found))
        if not changed:
            return None
    elif perturbation == "unicode":
        found, changed = typographic(found)
        if not changed:
            return None
    elif perturbation == "stale_line":
        found, changed = stale_middle(found)
        if not changed:
            return None
    return Case(ex, fmt, perturbation, start, expected, calls_for(fmt, ex.solution, view_b, found))


def retry_calls(case: Case, current: str) -> list[tuple[str, dict]]:
    """After a refusal the model reads the file again and redoes what is left, with unique context."""
    a, b = current.replace("\r\n", "\n"), case.expected.replace("\r\n", "\n")
    return calls_for(case.fmt, case.exercise.solution, b, unique_hunks(a, b, a, start_context=2))
