"""Rendering the top-ranked definitions, with their scope lines, into a token budget.

Each file shows its path, then only the lines of interest (a definition's line and the header lines of
the scopes around it), as they are in the file, with `⋮` where lines are skipped. No line numbers: they
would shift on every edit above a definition and so invalidate the cached prompt prefix
(docs/architecture.md, "Context assembly"); the agent finds lines with `search`. Files appear in path order so one more definition changes the
text locally.
How many definitions to show is found by galloping then bisecting on the count, because the token
count only grows with it: the result is the longest prefix of the ranking that fits, never over budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .tags import Definition

MAX_LINE_CHARS = 200
GAP = "⋮"


class MapRenderer:
    def __init__(self, lines_of: Callable[[str], list[str]]) -> None:
        self._lines_of = lines_of

    def render(self, defs: Sequence[tuple[float, str, Definition]]) -> str:
        wanted: dict[str, set[int]] = {}
        for _, path, d in defs:
            rows = wanted.setdefault(path, set())
            rows.add(d.line)
            rows.update(d.scopes)
        blocks = []
        for path in sorted(wanted):
            lines = self._lines_of(path)
            out = [f"{path}:"]
            previous = -1
            for row in sorted(wanted[path]):
                if row >= len(lines):
                    continue  # tags older than the file; the watcher will refresh them
                if previous >= 0 and row > previous + 1:
                    out.append(GAP)
                text = lines[row].rstrip()
                if len(text) > MAX_LINE_CHARS:
                    text = text[:MAX_LINE_CHARS] + "…"
                out.append(text)
                previous = row
            blocks.append("\n".join(out))
        return "\n\n".join(blocks) + ("\n" if blocks else "")

    def fit(self, defs: Sequence[tuple[float, str, Definition]], budget: int,
            count_tokens: Callable[[str], int]) -> tuple[str, int, int]:
        """(text, definitions shown, tokens) for the longest prefix of `defs` within `budget` tokens."""
        def cost(n: int) -> tuple[str, int]:
            text = self.render(defs[:n])
            return text, count_tokens(text)

        if budget <= 0 or not defs:
            return "", 0, 0
        best = ("", 0, 0)
        lo, hi = 0, len(defs) + 1  # invariant: cost(lo) fits (or lo == 0); cost(hi) does not (or hi is past the end)
        probe = min(64, len(defs))
        while probe < hi:  # gallop up from a small map: never render the whole repo just to learn it is too big
            text, tokens = cost(probe)
            if tokens > budget:
                hi = probe
                break
            lo, best = probe, (text, probe, tokens)
            if probe == len(defs):
                return best
            probe = min(probe * 2, len(defs))
        while hi - lo > 1:
            mid = (lo + hi) // 2
            text, tokens = cost(mid)
            if tokens <= budget:
                lo, best = mid, (text, mid, tokens)
            else:
                hi = mid
        return best
