"""Apply one old_string -> new_string edit to a file's text, or refuse with a reason the model can act on.

Order: exact substring (several places: refused, unless exactly one starts a line and the quote is whole
lines); then the line stages of `edit_match`, each tried with the quoted blank edge lines and without (the
first stage with exactly one match decides; if none has one, the first ambiguity is reported); then elided
blocks (`...` lines standing for unchanged code); then "already applied" (old_string is
gone but new_string is there, so a retried edit succeeds without a change); else the closest text
with a diff. Line endings, indentation style and the final newline of the file are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from .edit_feedback import EditRefused, ambiguous, not_found, over_broad
from .edit_match import (STAGES, Match, anchor_span, collapse_ws, find_block, first_stage, is_elision,
                         non_overlapping, substance)
from .edit_text import Lines, Reindent, block_lines, detect_indent, inside_strings, lf

ELISION_STAGES = ("exact", "trailing_whitespace", "indentation", "whitespace", "unicode")
MORE_CONTEXT = "Include a few more surrounding lines in old_string to make it unique, or set replace_all."


@dataclass
class EditOutcome:
    text: str
    replacements: int
    stage: str  # which matching stage found old_string ("already_applied" when nothing changed)
    line: int  # 1-based first line of the (first) replacement

    @property
    def already_applied(self) -> bool:
        return self.stage == "already_applied"


def _trim_blank_edges(old: list[str], new: list[str]) -> tuple[list[str], list[str]]:
    while old and not old[0].strip():
        old = old[1:]
        if new and not new[0].strip():
            new = new[1:]
    while old and not old[-1].strip():
        old = old[:-1]
        if new and not new[-1].strip():
            new = new[:-1]
    return old, new


def _exact(doc: Lines, old: str, new: str, replace_all: bool) -> EditOutcome | None:
    text = "\n".join(doc.lines) + ("\n" if doc.final_newline else "")
    positions, at = [], text.find(old)
    while at != -1:
        positions.append(at)
        at = text.find(old, at + len(old))
    if not positions:
        return None
    if len(positions) > 1 and not replace_all and old.endswith("\n"):
        # A quote of whole lines means whole lines: "\n    pass\n" is a blank line then `pass`, not the
        # tail of any line followed by `pass`.
        at_line_start = [p for p in positions if p == 0 or text[p - 1] == "\n"]
        positions = at_line_start if len(at_line_start) == 1 else positions
    line_of = [text.count("\n", 0, p) for p in positions]
    if len(positions) > 1 and not replace_all:
        raise ambiguous("old_string", line_of, "exact", MORE_CONTEXT)
    if old in new and not replace_all:
        # Applying an insertion twice is the classic retry bug: look for new_string already around old.
        before = new.index(old)
        p = positions[0]
        if p >= before and text[p - before:p - before + len(new)] == new:
            return EditOutcome(doc.render(), 0, "already_applied", line_of[0] + 1)
    convert = Reindent.style_only(detect_indent(block_lines(new)), doc.style)
    for p in reversed(positions):
        piece = new
        if convert is not None:
            pieces = new.split("\n")
            verbatim = inside_strings(pieces, doc.fences, doc.open_string_at(text.count("\n", 0, p)))
            if not (p == 0 or text[p - 1] == "\n"):
                verbatim.add(0)  # the quote starts mid-line: its first piece is not an indented line
            piece = "\n".join(x if k in verbatim or not x.strip() else convert.apply(x)
                              for k, x in enumerate(pieces))
        text = text[:p] + piece + text[p + len(old):]
    out = Lines.parse(text)
    result = Lines(out.lines, out.final_newline, doc.eol, doc.style)
    return EditOutcome(result.render(), len(positions), "exact", line_of[0] + 1)


def _check_size(match: Match, old: list[str], lines: list[str]) -> None:
    written, found = substance(old), substance(lines[match.start:match.end])
    if abs(found - written) > 80 and not 0.5 <= (found + 1) / (written + 1) <= 2.0:
        raise over_broad("old_string", match.start, match.end, len(old))


def code_pairs(matches: list[Match], doc: Lines) -> tuple[list[str], list[str]]:
    """(written, file) line pairs to learn indentation from, leaving out lines inside multi-line strings."""
    content = doc.string_rows()
    pairs = [pair for m in matches for pair, row in zip(m.pairs, m.rows) if row not in content]
    return [w for w, _ in pairs], [f for _, f in pairs]


def _render(match: Match, old: list[str], new: list[str], doc: Lines) -> list[str]:
    written, found = code_pairs([match], doc)
    reindent = Reindent.learn(written, found, detect_indent(old + new), doc.style)
    return reindent.apply_all(new, doc.fences, doc.open_string_at(match.start))


def _segments(lines: list[str], markers: set[str] | None = None) -> list[list[str]]:
    """Split at elision lines (or, for new_string, only at the very marker lines old_string used)."""
    parts: list[list[str]] = [[]]
    for line in lines:
        if (line.strip() in markers) if markers is not None else is_elision(line):
            parts.append([])
        else:
            parts[-1].append(line)
    return parts


def _elided(doc: Lines, old: list[str], new: list[str]) -> EditOutcome | None:
    """old_string with `...` lines: each quoted piece must be found once, in order, after the previous one."""
    pieces = _segments(old)
    if len(pieces) < 2 or any(substance(p) == 0 for p in pieces):
        return None
    found: list[Match] = []
    cursor = 0
    for index, piece in enumerate(pieces):
        matches = first_stage(doc.lines, piece, cursor, ELISION_STAGES)
        if not matches:
            return None
        if len(matches) > 1:
            # Taking the nearest would be a guess about where the model's range ends (it may mean a later one).
            where = "before the first '...'" if index == 0 else f"after '...' number {index}"
            raise ambiguous(f"the part of old_string {where}", [m.start for m in matches], matches[0].stage,
                            "Quote more lines around each '...' so every quoted part is unique.")
        found.append(matches[0])
        cursor = matches[0].end
    new_pieces = _segments(new, {line.strip() for line in old if is_elision(line)})
    written, file_lines = code_pairs(found, doc)
    reindent = Reindent.learn(written, file_lines, detect_indent(old + new), doc.style)
    if len(new_pieces) == len(pieces):
        out: list[str] = []
        for k, piece in enumerate(new_pieces):
            out += reindent.apply_all(piece, doc.fences, doc.open_string_at(found[k].start))
            if k + 1 < len(found):
                out += doc.lines[found[k].end:found[k + 1].start]  # the elided lines stay as they are
    elif len(new_pieces) == 1:
        # No '...' in new_string: the model replaces the whole range its quoted pieces delimit.
        out = reindent.apply_all(new, doc.fences, doc.open_string_at(found[0].start))
    else:
        raise EditRefused("old_string and new_string elide code ('...') a different number of times; write the "
                          "lines out, or use the same '...' lines in both", {"reason": "elision_mismatch"})
    start, end = found[0].start, found[-1].end
    lines = doc.lines[:start] + out + doc.lines[end:]
    return EditOutcome(Lines(lines, doc.final_newline, doc.eol, doc.style).render(), 1, "elision", start + 1)


def _sub_block(old: list[str], new: list[str]) -> int | None:
    """Where `new` sits inside `old` as consecutive lines (an edit that only deletes around it)."""
    m = len(new)
    return next((k for k in range(len(old) - m + 1) if old[k:k + m] == new), None)


def _alike(a: str, b: str) -> bool:
    return SequenceMatcher(None, collapse_ws(a), collapse_ws(b)).ratio() >= 0.8


def _already_applied(doc: Lines, old: list[str], new: list[str]) -> EditOutcome | None:
    """old_string is nowhere, new_string is in exactly one place: a resent edit, not a failure."""
    if substance(new) < 3:
        return None
    inside = _sub_block(old, new)
    if inside is None and "\n".join(new).strip() in "\n".join(old):
        return None  # new is a scattered part of old: presence of new proves nothing
    for stage in ELISION_STAGES:
        found = find_block(doc.lines, new, stage)
        if len(found) > 1:
            return None
        if len(found) == 1:
            match = found[0]
            if inside is not None:
                # A deletion counts as done only if the deleted neighbours are really gone.
                before, after = old[:inside], old[inside + len(new):]
                if before and match.start > 0 and _alike(doc.lines[match.start - 1], before[-1]):
                    return None
                if after and match.end < len(doc.lines) and _alike(doc.lines[match.end], after[0]):
                    return None
            return EditOutcome(doc.render(), 0, "already_applied", match.start + 1)
    return None


def apply_edit(text: str, old_string: str, new_string: str, replace_all: bool = False, path: str = "") -> EditOutcome:
    """`path` (only its suffix is used) says which multi-line string delimiters to leave alone when re-indenting."""
    if old_string == "":
        raise EditRefused("old_string is empty; use write_file to create a file or replace its whole content",
                          {"reason": "empty"})
    if old_string == new_string:
        raise EditRefused("old_string and new_string are identical; nothing to change", {"reason": "identical"})
    doc = Lines.parse(text, path)
    old, new = lf(old_string), lf(new_string)
    exact = _exact(doc, old, new, replace_all)
    if exact is not None:
        return exact
    full_old, full_new = block_lines(old), block_lines(new)
    old_lines, new_lines = _trim_blank_edges(full_old, full_new)
    if not old_lines:
        raise EditRefused("old_string is only whitespace and was not found; quote real lines", {"reason": "blank"})
    # Blank lines quoted around the block are context too ("a blank line, then `pass`"); try with them
    # first, then without, since models add or drop them freely.
    variants = [(full_old, full_new), (old_lines, new_lines)] if full_old != old_lines else [(old_lines, new_lines)]
    several: list[Match] = []
    # Elision lines say "code omitted here": a fuzzy middle (block_anchor) must not paper over them.
    stages = [s for s in STAGES[1:] if s != "block_anchor" or not any(is_elision(x) for x in old_lines)]
    for stage in stages:
        for quoted, replacement in variants:
            matches = find_block(doc.lines, quoted, stage)
            if not matches:
                continue
            if len(matches) > 1 and not replace_all:
                # Later stages accept a superset (block_anchor aside), so they rarely single one out; if
                # none does, this first ambiguity is what gets reported.
                several = several or matches
                continue
            chosen = non_overlapping(matches)
            for match in chosen:
                _check_size(match, quoted, doc.lines)
            lines = list(doc.lines)
            for match in reversed(chosen):
                lines[match.start:match.end] = _render(match, quoted, replacement, doc)
            result = Lines(lines, doc.final_newline, doc.eol, doc.style)
            return EditOutcome(result.render(), len(chosen), stage, chosen[0].start + 1)
    if several:
        raise ambiguous("old_string", [m.start for m in several], several[0].stage, MORE_CONTEXT)
    elided = _elided(doc, old_lines, new_lines)
    if elided is not None:
        return elided
    applied = _already_applied(doc, old_lines, new_lines)
    if applied is not None:
        return applied
    text = doc.render()
    plain = "\n".join(doc.lines)
    if new not in old and len(new.strip()) >= 3 and plain.count(new) == 1:
        # A part-of-line edit resent after it was applied (old "a - b", new "a + b").
        return EditOutcome(text, 0, "already_applied", plain[:plain.index(new)].count("\n") + 1)
    span = anchor_span(doc.lines, old_lines)
    if span is not None:
        raise over_broad("old_string", span[0], span[1], len(old_lines))
    raise not_found("old_string", doc.lines, old_lines)


def apply_edits(text: str, edits: list[tuple[str, str, bool]], path: str = "") -> list[EditOutcome]:
    """Several edits in order on one text; the first refusal stops them all (nothing is half-applied)."""
    outcomes = []
    for index, (old, new, replace_all) in enumerate(edits):
        try:
            outcome = apply_edit(text, old, new, replace_all, path)
        except EditRefused as exc:
            raise EditRefused(f"edit {index + 1} of {len(edits)}: {exc} (no edit of this call was applied)",
                              {**exc.data, "edit_index": index}) from None
        outcomes.append(outcome)
        text = outcome.text
    return outcomes
