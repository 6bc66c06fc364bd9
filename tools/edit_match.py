"""Where a block of lines the model quoted sits in a file: graded matching, strictest stage first.

Stages, in order. Callers take the first stage with exactly one match; when none has exactly one,
the first stage that found several is reported as ambiguous (never guessed). The stages are nested
(each accepts what the stricter ones accept) except block_anchor, so a looser stage cannot undo an
ambiguity.

- exact: the lines as written.
- trailing_whitespace: lines equal after stripping trailing spaces, tabs and stray CRs.
- indentation: the block equals the file's lines up to one uniform indent shift.
- whitespace: lines equal after collapsing every whitespace run (indent, tabs vs spaces, inner gaps).
- unicode: as whitespace, after folding typographic quotes, dashes, ellipses and odd spaces to ASCII.
- block_anchor: first and last lines equal (whitespace-collapsed), the window about as long as the
  block (within a quarter), and the middle lines similar above BLOCK_ANCHOR_SIMILARITY.

`Match.pairs` records which written line met which file line, so the replacement can be re-indented.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Callable

from .edit_text import leading_ws

# unicode comes before block_anchor (the issue lists it after): it is a line-by-line match, so trying it
# first keeps the similarity-based stage for what nothing stricter explains. Measured on the gold
# replay's typographic-quote cases: 292 edits went through block_anchor in the other order, 0 in this one.
STAGES: tuple[str, ...] = ("exact", "trailing_whitespace", "indentation", "whitespace", "unicode", "block_anchor")
BLOCK_ANCHOR_SIMILARITY = 0.75

_PUNCT = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2009": " ", "\u202f": " ", "\u3000": " ",
})
# Lines a model writes to say "unchanged code here": `...`, `# ...`, `// ... existing code ...`. Words after
# the dots only count inside a comment, so `...rest,` (spread syntax) is never taken for one.
ELISION = re.compile(r"^\s*(?:(?:#|//|/\*|<!--|--|;)\s*(?:\.\.\.|\u2026).*|(?:\.\.\.|\u2026))\s*$")


def collapse_ws(line: str) -> str:
    return " ".join(line.split())


def fold_unicode(line: str) -> str:
    return collapse_ws(line.translate(_PUNCT).replace("\u2026", "..."))


_KEYS: dict[str, Callable[[str], str]] = {
    "exact": lambda line: line,
    "trailing_whitespace": lambda line: line.rstrip(),
    "whitespace": collapse_ws,
    "unicode": fold_unicode,
}


@dataclass
class Match:
    start: int  # first file line (0-based)
    end: int  # one past the last file line
    stage: str
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (written line, file line)
    similarity: float = 1.0
    rows: list[int] = field(default_factory=list)  # the file line index of each pair

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows = list(range(self.start, self.start + len(self.pairs)))

    @property
    def size(self) -> int:
        return self.end - self.start


def _dedent(lines: list[str]) -> list[str]:
    indents = [leading_ws(line) for line in lines if line.strip()]
    prefix = os.path.commonprefix(indents) if indents else ""
    return [line[len(prefix):].rstrip() if line.strip() else "" for line in lines]


def _keyed(lines: list[str], old: list[str], key: Callable[[str], str], start: int, stage: str) -> list[Match]:
    wanted = [key(line) for line in old]
    keyed = [key(line) for line in lines]
    m, found = len(old), []
    first = wanted[0]
    for i in range(start, len(lines) - m + 1):
        if keyed[i] == first and keyed[i:i + m] == wanted:
            found.append(Match(i, i + m, stage, list(zip(old, lines[i:i + m]))))
    return found


def _indentation(lines: list[str], old: list[str], start: int) -> list[Match]:
    wanted = _dedent(old)
    anchor = next(k for k, line in enumerate(old) if line.strip())
    anchor_text = old[anchor].strip()
    m, found = len(old), []
    for i in range(start, len(lines) - m + 1):
        if lines[i + anchor].strip() == anchor_text and _dedent(lines[i:i + m]) == wanted:
            found.append(Match(i, i + m, "indentation", list(zip(old, lines[i:i + m]))))
    return found


def _block_anchor(lines: list[str], old: list[str], start: int) -> list[Match]:
    m = len(old)
    first, last = collapse_ws(old[0]), collapse_ws(old[-1])
    if m < 3 or not first or not last:
        return []
    keyed = [collapse_ws(line) for line in lines]
    middle = "\n".join(collapse_ws(line) for line in old[1:-1])
    tolerance = max(1, m // 4)
    found = []
    for i in range(start, len(lines)):
        if keyed[i] != first:
            continue
        best: Match | None = None
        for j in range(i + max(2, m - tolerance) - 1, min(len(lines), i + m + tolerance)):
            if keyed[j] != last:
                continue
            score = SequenceMatcher(None, middle, "\n".join(keyed[i + 1:j]), autojunk=False).ratio()
            if score >= BLOCK_ANCHOR_SIMILARITY and (best is None or score > best.similarity):
                best = Match(i, j + 1, "block_anchor", [(old[0], lines[i]), (old[-1], lines[j])], score, [i, j])
        if best is not None:
            found.append(best)
    return found


def anchor_span(lines: list[str], old: list[str]) -> tuple[int, int] | None:
    """The one stretch of the file that starts with old's first line and ends with its last line but is far
    longer than old (outside block_anchor's tolerance): what a lenient matcher would wrongly replace."""
    if len(old) < 2 or substance([old[0]]) < 3 or substance([old[-1]]) < 3:
        return None
    first, last = collapse_ws(old[0]), collapse_ws(old[-1])
    keyed = [collapse_ws(line) for line in lines]
    starts = [i for i, k in enumerate(keyed) if k == first]
    spans = [(i, j + 1) for i in starts for j in range(i + 1, len(lines)) if keyed[j] == last]
    if len(spans) != 1 or spans[0][1] - spans[0][0] <= len(old) + max(1, len(old) // 4):
        return None
    return spans[0]


def find_block(lines: list[str], old: list[str], stage: str, start: int = 0) -> list[Match]:
    """Every place (overlapping ones included) where `old` matches at `stage`, at or after `start`."""
    if not old or not any(line.strip() for line in old):
        return []
    if stage == "indentation":
        return _indentation(lines, old, start)
    if stage == "block_anchor":
        return _block_anchor(lines, old, start)
    return _keyed(lines, old, _KEYS[stage], start, stage)


def first_stage(lines: list[str], old: list[str], start: int = 0,
                stages: tuple[str, ...] = STAGES) -> list[Match]:
    """The one match of the first stage that finds exactly one; else the matches of the first stage that
    found several (the caller reports the ambiguity or breaks the tie); else nothing."""
    several: list[Match] = []
    for stage in stages:
        found = find_block(lines, old, stage, start)
        if len(found) == 1:
            return found
        several = several or found
    return several


def non_overlapping(matches: list[Match]) -> list[Match]:
    kept: list[Match] = []
    for match in sorted(matches, key=lambda mt: mt.start):
        if not kept or match.start >= kept[-1].end:
            kept.append(match)
    return kept


def is_elision(line: str) -> bool:
    return bool(ELISION.match(line))


def substance(lines: list[str]) -> int:
    """How much real text some lines carry (letters and digits), to tell a real anchor from `}`."""
    return sum(ch.isalnum() for line in lines for ch in line)
