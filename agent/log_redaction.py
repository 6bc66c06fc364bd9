"""What a memory forget removes from the session log: pure functions over one event payload or title.

A forgotten item was written to the log in more places than its own text: the user's sentence it was
captured from, a later prompt that repeats a token of it, a tool argument the model wrote (JSON inside
JSON), a compaction summary, a headless report, a memory note. For each item the forget passes its
distinctive spans (memory/spans.py) and, for a captured item, where it was captured; every string in every
payload is searched for the spans across escaping, case and normal forms and each match becomes the
item's marker, so the transcript stays readable and every JSON document stays valid.

The whole log is read once per forget. A cheap probe keeps the span search to rows that can hold a span:
the longest run of ASCII letters and digits of each span, looked for in the row folded (NFKD, case-folded).
Escaping never splits such a run (JSON and Python escape only non-ASCII and control characters), so the
probe misses no row the span search would find; spans without such a run send every row to the search.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..memory.capture import source_sentences
from ..memory.spans import redact as redact_spans

if TYPE_CHECKING:
    from ..memory.purge import Redaction

MIN_OVERLAP = 12  # a title cut off inside a redacted text still holds its first characters; shorter overlaps are chance
ASCII_RUN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Needles:
    """One item's spans (its source sentences included) with their probes."""

    marker: str
    spans: tuple[str, ...]
    probes: tuple[str, ...] | None  # None: some span has no ASCII run, so every row is searched

    def may_hold(self, folded_row: str) -> bool:
        return self.probes is None or any(p in folded_row for p in self.probes)


def probe(span: str) -> str | None:
    runs = ASCII_RUN.findall(unicodedata.normalize("NFKC", span).lower())
    return max(runs, key=len) if runs else None


def needles(redaction: Redaction, sources: list[str]) -> Needles:
    """`sources`: the user messages of the turn the item was captured in (their matching sentences go too)."""
    sentences = [s for message in sources for s in source_sentences(message, redaction.text)]
    spans = tuple(sorted({*redaction.spans, redaction.text, *sentences}, key=lambda s: (-len(s), s)))
    probes = [probe(s) for s in spans]
    return Needles(marker=redaction.marker, spans=spans, probes=None if None in probes else tuple(probes))  # type: ignore[arg-type]


def fold_row(payload: str) -> str:
    return unicodedata.normalize("NFKD", payload).casefold()


def scrub(value: Any, items: list[Needles]) -> Any:
    """`value` (a decoded JSON payload) with every span of every item replaced by that item's marker."""
    if isinstance(value, str):
        for item in items:
            value, _ = redact_spans(value, item.spans, item.marker)
        return value
    if isinstance(value, list):
        return [scrub(v, items) for v in value]
    if isinstance(value, dict):
        return {k: scrub(v, items) for k, v in value.items()}
    return value


def scrub_payload(payload: str, items: list[Needles]) -> str | None:
    """The payload (JSON text) redacted, or None when nothing in it matched."""
    folded = fold_row(payload)
    candidates = [item for item in items if item.may_hold(folded)]
    if not candidates:
        return None
    loaded = json.loads(payload)
    scrubbed = scrub(loaded, candidates)
    return None if scrubbed == loaded else json.dumps(scrubbed, ensure_ascii=False)


def redact_title(title: str, text: str, marker: str) -> str:
    """Titles are the first user line cut at a width, so they can hold the text whole or only its start."""
    if text in title:
        return title.replace(text, marker)
    for size in range(min(len(title), len(text)) - 1, MIN_OVERLAP - 1, -1):
        if title.endswith(text[:size]):
            return title[:-size] + marker
    return title


def scrub_title(title: str, items: list[Needles]) -> str:
    for item in items:
        title, _ = redact_spans(title, item.spans, item.marker)
        for span in item.spans:  # a title cut off inside a long span (the sentence, the text) holds its start
            if len(span) > MIN_OVERLAP:
                title = redact_title(title, span, item.marker)
    return title


def scrub_file(path: Path, items: list[Needles]) -> bool:
    """Redact a text file that may hold user text (a debug log, the TUI's prompt history: JSON stays valid JSON,
    the marker needs no escaping); replaced atomically. Returns whether it changed."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    folded = fold_row(text)
    scrubbed = text
    for item in items:
        if item.may_hold(folded):
            scrubbed, _ = redact_spans(scrubbed, item.spans, item.marker)
    if scrubbed == text:
        return False
    temporary = path.with_name(path.name + ".redacting")
    temporary.write_text(scrubbed, encoding="utf-8", errors="surrogateescape")
    os.replace(temporary, path)
    return True
