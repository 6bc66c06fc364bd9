"""The "holes" scenario: the gold solution with its longest function bodies emptied out, so the edits land in
the middle of a full-size file among look-alike code (the stub scenario mostly rewrites a tiny file).

Python bodies become `pass` (a leading docstring is kept); JavaScript bodies become the exercises' own
`throw new Error('Remove this statement and implement this function');`. Up to MAX_HOLES functions,
longest first, never nested in one another.
"""

from __future__ import annotations

import ast
from dataclasses import replace

import tree_sitter_javascript
from tree_sitter import Language, Node, Parser

from edit_replay_cases import Exercise

MAX_HOLES = 3
MIN_BODY_LINES = 3
JS_THROW = "throw new Error('Remove this statement and implement this function');"
_JS = Parser(Language(tree_sitter_javascript.language()))


def _pick(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Longest first, no overlaps: (first body line, last body line, indent), 0-based inclusive."""
    chosen: list[tuple[int, int, str]] = []
    for span in sorted(spans, key=lambda s: (s[0] - s[1], s[0])):
        if all(span[1] < c[0] or span[0] > c[1] for c in chosen):
            chosen.append(span)
        if len(chosen) == MAX_HOLES:
            break
    return chosen


def _python_spans(text: str) -> list[tuple[int, int, str]]:
    lines = text.split("\n")
    spans = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]  # keep the docstring, as the exercise stubs do
        if not body or body[0].lineno == node.lineno:
            continue
        first, last = body[0].lineno - 1, node.end_lineno - 1
        if last - first + 1 >= MIN_BODY_LINES:
            line = lines[first]
            spans.append((first, last, line[: len(line) - len(line.lstrip())]))
    return spans


def _js_spans(text: str) -> list[tuple[int, int, str]]:
    lines = text.split("\n")
    spans = []
    stack: list[Node] = [_JS.parse(text.encode()).root_node]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.type != "statement_block" or node.parent is None or node.parent.type not in (
                "function_declaration", "method_definition", "arrow_function", "function_expression"):
            continue
        open_row, close_row = node.start_point[0], node.end_point[0]
        first, last = open_row + 1, close_row - 1
        if last - first + 1 < MIN_BODY_LINES or lines[open_row].rstrip()[-1:] != "{" \
                or lines[close_row].strip()[:1] != "}":
            continue
        line = lines[first]
        spans.append((first, last, line[: len(line) - len(line.lstrip())]))
    return spans


def with_holes(ex: Exercise) -> Exercise | None:
    """The exercise with the gold solution, holed, as the starting file; None when it has no body to empty."""
    spans = _pick(_python_spans(ex.gold) if ex.lang == "python" else _js_spans(ex.gold))
    if not spans:
        return None
    lines = ex.gold.split("\n")
    filler = "pass" if ex.lang == "python" else JS_THROW
    for first, last, indent in sorted(spans, reverse=True):
        lines[first:last + 1] = [indent + filler]
    return replace(ex, stub="\n".join(lines))
