"""Definitions and references of one file, from a tree-sitter parse and our tag queries.

A definition keeps the lines of the scopes around it (class, impl, namespace headers), so the map can be
rendered from cached tags alone, without parsing again. References are kept as counts per identifier:
the ranking needs how often a file uses a name, not where.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from .languages import grammar

if TYPE_CHECKING:
    from tree_sitter import Parser, Tree

# Bump when queries or the stored shape change: cached tags from another version are ignored.
TAGS_VERSION = 1
MAX_SCOPE_LINES = 4


class Definition(NamedTuple):
    name: str
    kind: str
    line: int  # 0-based line of the name
    scopes: tuple[int, ...]  # 0-based header lines of enclosing scopes, outermost first


@dataclass(frozen=True)
class FileTags:
    language: str
    defs: tuple[Definition, ...]
    refs: dict[str, int]

    def to_json(self) -> str:
        return json.dumps([self.language, [list(d) for d in self.defs], self.refs], separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str) -> FileTags:
        language, defs, refs = json.loads(payload)
        return cls(language, tuple(Definition(n, k, ln, tuple(s)) for n, k, ln, s in defs), refs)


_local = threading.local()


def _parser(language: str) -> Parser:
    # Parsers hold state; one per thread and language lets the watcher thread parse beside the main one.
    parsers = _local.__dict__.setdefault("parsers", {})
    if language not in parsers:
        from tree_sitter import Parser
        parsers[language] = Parser(grammar(language).language)
    return parsers[language]


def parse(source: bytes, language: str, old_tree: Tree | None = None) -> Tree:
    return _parser(language).parse(source, old_tree) if old_tree else _parser(language).parse(source)


def tags_from_tree(tree: Tree, source: bytes, language: str) -> FileTags:
    from tree_sitter import QueryCursor

    captures = QueryCursor(grammar(language).query).captures(tree.root_node)
    ref_bytes: Counter[bytes] = Counter()
    scopes: list[tuple[int, int, int]] = []
    raw_defs: list[tuple[int, int, str, bytes]] = []
    for capture, nodes in captures.items():
        if capture == "ref":
            ref_bytes.update(source[n.start_byte:n.end_byte] for n in nodes)
        elif capture == "scope":
            scopes.extend((n.start_byte, n.end_byte, n.start_point.row) for n in nodes)
        else:
            kind = capture.removeprefix("def.")
            raw_defs.extend((n.start_byte, n.start_point.row, kind, source[n.start_byte:n.end_byte]) for n in nodes)
    refs = {name.decode("utf-8", "replace"): count for name, count in ref_bytes.items()}
    return FileTags(language, _attach_scopes(raw_defs, scopes), refs)


def extract_tags(source: bytes, language: str) -> FileTags:
    return tags_from_tree(parse(source, language), source, language)


def _attach_scopes(raw_defs: list[tuple[int, int, str, bytes]], scopes: list[tuple[int, int, int]]) -> tuple[Definition, ...]:
    """One sweep in byte order: syntax trees nest, so the open scopes form a stack."""
    raw_defs.sort()
    scopes.sort(key=lambda s: (s[0], -s[1]))
    stack: list[tuple[int, int]] = []  # (end_byte, row)
    defs: list[Definition] = []
    seen: set[tuple[bytes, int]] = set()
    si = 0
    for start, row, kind, name in raw_defs:
        while si < len(scopes) and scopes[si][0] < start:
            s_start, s_end, s_row = scopes[si]
            while stack and stack[-1][0] <= s_start:
                stack.pop()
            stack.append((s_end, s_row))
            si += 1
        while stack and stack[-1][0] <= start:
            stack.pop()
        if (name, row) in seen:  # two patterns matched the same name (e.g. a const holding an arrow function)
            continue
        seen.add((name, row))
        lines = sorted({s_row for _, s_row in stack if s_row < row})[-MAX_SCOPE_LINES:]
        defs.append(Definition(name.decode("utf-8", "replace"), kind, row, tuple(lines)))
    return tuple(defs)


class IncrementalParser:
    """Keeps the last tree of recently changed files so the next edit re-parses only what changed."""

    def __init__(self, keep: int = 64) -> None:
        self._keep = keep
        self._trees: OrderedDict[str, tuple[bytes, Tree]] = OrderedDict()
        self._lock = threading.Lock()

    def tags(self, path: str, source: bytes, language: str) -> FileTags:
        with self._lock:
            previous = self._trees.pop(path, None)
        old_tree = None
        if previous is not None and previous[1].language == grammar(language).language:
            old_tree = previous[1]
            _apply_edit(old_tree, previous[0], source)
        tree = parse(source, language, old_tree)
        with self._lock:
            self._trees[path] = (source, tree)
            while len(self._trees) > self._keep:
                self._trees.popitem(last=False)
        return tags_from_tree(tree, source, language)

    def forget(self, path: str) -> None:
        with self._lock:
            self._trees.pop(path, None)


def _apply_edit(tree: Tree, old: bytes, new: bytes) -> None:
    """Tell the old tree which byte range changed: the span between the common prefix and suffix."""
    prefix = common_prefix_length(old, new)
    limit = min(len(old), len(new)) - prefix
    suffix = common_prefix_length(old[::-1][:limit], new[::-1][:limit])
    old_end, new_end = len(old) - suffix, len(new) - suffix
    tree.edit(start_byte=prefix, old_end_byte=old_end, new_end_byte=new_end, start_point=_point(old, prefix),
              old_end_point=_point(old, old_end), new_end_point=_point(new, new_end))


def common_prefix_length(a: bytes | str, b: bytes | str) -> int:
    # Binary search over slice equality: each comparison is a memcmp, so this stays fast on big files.
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _point(source: bytes, offset: int) -> tuple[int, int]:
    row = source.count(b"\n", 0, offset)
    return row, offset - (source.rfind(b"\n", 0, offset) + 1)
