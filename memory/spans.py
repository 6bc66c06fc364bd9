"""Distinctive spans of a memory, found and redacted in any stored text (pure functions, no store).

Forget must remove a memory's content wherever it was written: the user's sentence, a later prompt that
repeats a token of it, a tool argument the model wrote. Those copies are rarely the item's exact text, so
forget looks for its *distinctive spans*: the whole text, its slot value ("pytest -x"), quoted strings,
identifiers (snake_case, camelCase, dotted names, flags, tokens mixing letters and digits), numbers of two
digits or more and versions, paths and file names, URLs and e-mail addresses.

A stored text may hold them escaped: JSON (`\\"`, `\\n`, `\\\\`, `\\u00e9`, surrogate pairs), JSON inside
JSON (escaped twice), Python's `\\xNN` / `\\UXXXXXXXX`, another case, another Unicode normal form, other
whitespace. `find_spans` decodes the text into a comparable view (decoded, NFKD, case-folded, whitespace
runs as one space) that remembers which original characters each view character came from, searches the
view, and maps the matches back, so `redact` replaces exactly the original characters, escapes included,
and a JSON document stays valid JSON. Matches respect word edges ("nox" is not found in "equinox").

The marker rule keeps a transcript readable: each run of matched text becomes one marker
(`[forgotten]`, or `[forgotten memory ID]`), and markers separated only by spaces or punctuation merge
into one, so "use nox (nox -s tests)" reads "use [forgotten]", not "use [forgotten] ([forgotten])".
The marker holds no quote or backslash, so it is safe at any escaping level.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

MARKER = "[forgotten]"
MIN_SPAN = 3  # shorter spans ("-x", "v2") match by chance; they are still redacted inside a longer span
MAX_DECODE_LEVELS = 3  # JSON inside JSON inside JSON is the deepest nesting we write

QUOTED = re.compile(r'"([^"\n]{3,200})"|(?<!\w)\'([^\'\n]{3,200})\'(?!\w)|`([^`\n]{3,200})`|“([^”\n]{3,200})”')
TOKEN = re.compile(r"[^\s\"'`()\[\]{}<>,;=]+")
IDENTIFIER = re.compile(r"^(?:\w+_\w+|[a-z]+[A-Z]\w*|[A-Z]\w*[a-z][A-Z]\w*|\w+(?:\.\w+)+|--?[a-z][\w-]*|"
                        r"(?=[\w-]*[a-z])(?=[\w-]*\d)[\w-]+|\w+(?:-\w+){2,})$")
PARTS = re.compile(r"[./\\:@?#&=]+")
MIN_PART = 4
NUMBER = re.compile(r"^\d+(?:[.,:]\d+)*$")
PATHLIKE = re.compile(r"/|\\|^\.?[\w-]+\.[a-z][\w]{0,5}$|://|@")
ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|x([0-9a-fA-F]{2})|(.))", re.DOTALL)
SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "/": "/", "\\": "\\", '"': '"', "'": "'"}
# What may lie between two matches that become one marker: no quote or backslash, so two matches in
# different JSON strings (at least two quotes apart) never merge across the document's structure.
JOINER = re.compile(r"^[\s.,;:!?()*_-]*$")


def distinctive_spans(text: str, values: Iterable[str] = ()) -> list[str]:
    """The spans of `text` whose presence elsewhere means the memory was copied there, longest first.
    `values`: more spans the caller knows (a preference's slot value, the values it replaced)."""
    spans = {text.strip(), *(v.strip() for v in values)}
    for match in QUOTED.finditer(text):
        spans.add(next(g for g in match.groups() if g is not None).strip())
    for token in TOKEN.findall(text):
        token = token.strip(".:!?")
        if IDENTIFIER.match(token) or PATHLIKE.search(token) or (NUMBER.match(token) and sum(c.isdigit() for c in token) >= 2):
            spans.add(token)
        # The distinctive parts of a host, path or dotted name are copied alone too ("stg-qz31" of
        # "stg-qz31.example.test" in a search pattern): the parts that are identifiers themselves.
        parts = [part for part in PARTS.split(token) if part != token and len(part) >= MIN_PART and IDENTIFIER.match(part)]
        spans.update(parts)
        if parts:
            spans.add(token)
    kept = [s for s in spans if len(s) >= MIN_SPAN or (NUMBER.match(s) and len(s) >= 2)]
    return sorted(kept, key=lambda s: (-len(s), s))


def memory_spans(text: str) -> list[str]:
    """The distinctive spans of a memory's text, with its value when it is a preference in a valued slot
    ("Run the tests with nox -s tests." -> "nox -s tests"): what the session store's redaction looks for."""
    from .slots import subject

    found = subject(text)
    return distinctive_spans(text, [found.value] if found is not None and found.valued else [])


@dataclass(frozen=True)
class View:
    """A decoded, folded copy of a text; `origin[i]` is the (start, end) of view character i in the text."""

    text: str
    origin: list[tuple[int, int]]


def _decode_once(text: str) -> tuple[str, list[tuple[int, int]]] | None:
    """One level of backslash escapes decoded, with each character's source range; None when there are none."""
    if "\\" not in text:
        return None
    out: list[str] = []
    origin: list[tuple[int, int]] = []
    i = 0
    while i < len(text):
        match = ESCAPE.match(text, i) if text[i] == "\\" else None
        if match is None:
            out.append(text[i])
            origin.append((i, i + 1))
            i += 1
            continue
        hex4, hex8, hex2, char = match.groups()
        end = match.end()
        if hex4 is not None:
            code = int(hex4, 16)
            low = re.match(r"\\u(d[c-f][0-9a-f]{2})", text[end:end + 6], re.IGNORECASE)
            if 0xD800 <= code < 0xDC00 and low:  # a surrogate pair is one character
                code = 0x10000 + ((code - 0xD800) << 10) + (int(low.group(1), 16) - 0xDC00)
                end += 6
            decoded = chr(code)
        elif hex8 is not None:
            decoded = chr(min(int(hex8, 16), 0x10FFFF))
        elif hex2 is not None:
            decoded = chr(int(hex2, 16))
        else:
            decoded = SIMPLE_ESCAPES.get(char, "\\" + char)
        for ch in decoded:
            out.append(ch)
            origin.append((i, end))
        i = end
    return "".join(out), origin


def _fold(text: str, origin: list[tuple[int, int]]) -> View:
    out: list[str] = []
    mapped: list[tuple[int, int]] = []
    for ch, source in zip(text, origin):
        if ch.isspace():
            if out and out[-1] == " ":
                mapped[-1] = (mapped[-1][0], source[1])  # a run of whitespace is one space
                continue
            folded = " "
        else:
            folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", ch).casefold())
        for f in folded:
            if unicodedata.combining(f) and not out:
                continue
            out.append(f)
            mapped.append(source)
    return View("".join(out), mapped)


def fold(text: str) -> str:
    """A span as `find_spans` compares it."""
    return _fold(text, [(i, i + 1) for i in range(len(text))]).text.strip()


def views(text: str) -> list[View]:
    """The text as written, then decoded once, twice, ... (each level's ranges map to the original text)."""
    origin = [(i, i + 1) for i in range(len(text))]
    found = [_fold(text, origin)]
    current, current_origin = text, origin
    for _ in range(MAX_DECODE_LEVELS):
        decoded = _decode_once(current)
        if decoded is None or decoded[0] == current:
            break
        current, level_origin = decoded
        current_origin = [(current_origin[a][0], current_origin[b - 1][1]) for a, b in level_origin]
        found.append(_fold(current, current_origin))
    return found


def _wordy(char: str) -> bool:
    return char.isalnum() or char == "_"


def _edge(view: str, index: int) -> bool:
    return index < 0 or index >= len(view) or not _wordy(view[index])


def find_spans(stored: str, spans: Iterable[str]) -> list[tuple[int, int]]:
    """The (start, end) ranges of `stored` holding any of the spans, in any escaping; merged, in order."""
    needles = sorted({fold(s) for s in spans if fold(s)}, key=len, reverse=True)
    ranges: list[tuple[int, int]] = []
    for view in views(stored):
        for needle in needles:
            for match in re.finditer(re.escape(needle), view.text):
                a, b = match.span()
                # Word edges: an alphanumeric end of the needle must not continue a word in the text.
                if (_wordy(needle[0]) and not _edge(view.text, a - 1)) or (_wordy(needle[-1]) and not _edge(view.text, b)):
                    continue
                ranges.append((view.origin[a][0], view.origin[b - 1][1]))
    return _merge(ranges)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def marker(item_id: str | None = None) -> str:
    return f"[forgotten memory {item_id}]" if item_id else MARKER


def redact(stored: str, spans: Iterable[str], replacement: str = MARKER) -> tuple[str, int]:
    """`stored` with every span replaced by the marker (runs joined only by spaces or punctuation become one
    marker); returns the text and how many markers it holds now that it did not before."""
    ranges = find_spans(stored, spans)
    if not ranges:
        return stored, 0
    joined: list[tuple[int, int]] = [ranges[0]]
    for start, end in ranges[1:]:
        if JOINER.match(stored[joined[-1][1]:start]):
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    out, pos = [], 0
    for start, end in joined:
        out += [stored[pos:start], replacement]
        pos = end
    out.append(stored[pos:])
    return "".join(out), len(joined)


def contains_spans(stored: str, spans: Iterable[str]) -> bool:
    return bool(find_spans(stored, spans))
