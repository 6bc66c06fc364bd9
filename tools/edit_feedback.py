"""Refusals that teach: what the model should look at and do next when an edit cannot be applied."""

from __future__ import annotations

from difflib import SequenceMatcher, unified_diff
from typing import Any

from .edit_match import collapse_ws

MAX_SHOWN_LINES = 30


class EditRefused(Exception):
    """The edit was not applied; `str(exc)` tells the model what to do instead, `data` is for the UI."""

    def __init__(self, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = data or {}


def _visible(line: str) -> str:
    # Tabs and trailing spaces are what models most often get wrong, and they are invisible in a diff.
    body = line.rstrip(" ")
    return body.replace("\t", "\u2192   ") + "\u00b7" * (len(line) - len(body))


def closest(lines: list[str], old: list[str]) -> tuple[int, int, float] | None:
    """The window of the file most like `old`: (start, end, similarity), or None for an empty file."""
    if not lines or not old:
        return None
    m = min(len(old), len(lines))
    wanted = {collapse_ws(line) for line in old if line.strip()}
    keyed = [collapse_ws(line) for line in lines]
    # Cheap pre-score (how many of the window's lines appear in old), then the real ratio on the best few.
    hits = [1 if k in wanted and k else 0 for k in keyed]
    running = sum(hits[:m])
    scores = [running]
    for i in range(1, len(lines) - m + 1):
        running += hits[i + m - 1] - hits[i - 1]
        scores.append(running)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:40]
    old_text = "\n".join(collapse_ws(line) for line in old)
    best = max(order, key=lambda i: SequenceMatcher(None, old_text, "\n".join(keyed[i:i + m]), autojunk=False).ratio())
    ratio = SequenceMatcher(None, old_text, "\n".join(keyed[best:best + m]), autojunk=False).ratio()
    return best, best + m, ratio


def diff_against(old: list[str], found: list[str], start: int) -> str:
    diff = list(unified_diff([_visible(x) for x in old], [_visible(x) for x in found],
                             "your text", f"file lines {start + 1}-{start + len(found)}", lineterm="", n=2))
    if len(diff) > MAX_SHOWN_LINES:
        diff = diff[:MAX_SHOWN_LINES] + [f"... ({len(diff) - MAX_SHOWN_LINES} more diff lines)"]
    return "\n".join(diff)


def not_found(what: str, lines: list[str], old: list[str]) -> EditRefused:
    near = closest(lines, old)
    if near is None or near[2] < 0.5:
        return EditRefused(f"{what} not found, and nothing in the file is close to it. Read the file again "
                           "(read_file) and copy the lines to replace exactly.", {"reason": "not_found"})
    start, end, ratio = near
    whitespace_only = [collapse_ws(x) for x in old] == [collapse_ws(x) for x in lines[start:end]]
    hint = " They differ only in whitespace." if whitespace_only else ""
    message = (f"{what} not found. The closest text is at lines {start + 1}-{end} ({ratio:.0%} similar).{hint} "
               f"Differences (- your text, + the file; \u2192 is a tab, \u00b7 a trailing space):\n"
               f"{diff_against(old, lines[start:end], start)}\n"
               f"Copy the current lines exactly (read_file offset={max(1, start - 1)}) and retry; "
               "do not resend edits that already succeeded.")
    return EditRefused(message, {"reason": "not_found", "closest": {"start": start + 1, "end": end,
                                                                      "similarity": round(ratio, 3)}})


def ambiguous(what: str, starts: list[int], stage: str, suggestion: str) -> EditRefused:
    shown = ", ".join(str(s + 1) for s in starts[:20]) + (" ..." if len(starts) > 20 else "")
    how = "" if stage == "exact" else f" (after relaxing {stage.replace('_', ' ')})"
    return EditRefused(f"{what} matches {len(starts)} places{how} (lines {shown}). {suggestion}",
                       {"reason": "multiple", "lines": [s + 1 for s in starts], "stage": stage})


def over_broad(what: str, start: int, end: int, written: int) -> EditRefused:
    return EditRefused(f"{what} ({written} lines) would replace lines {start + 1}-{end} ({end - start} lines), "
                       "which is much larger or smaller than what you quoted; refusing an over-broad replacement. "
                       "Quote the exact current lines.", {"reason": "over_broad", "start": start + 1, "end": end})
