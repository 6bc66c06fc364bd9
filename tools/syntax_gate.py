"""Syntax gate: after an edit, a file that parsed cleanly before and has errors now is flagged.

Grammars are the per-language tree-sitter wheels; a language whose wheel is not installed is simply
not checked. The mode is `Workspace.syntax_gate` (the `syntax_gate` setting): `warn` (default: the edit is
kept and the model is told where the error is), `refuse` (the edit is not written), or `off`.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePath

from tree_sitter import Language, Node, Parser

from .workspace import SyntaxGateMode

_GRAMMARS: dict[str, tuple[str, str]] = {
    ".py": ("tree_sitter_python", "language"), ".pyi": ("tree_sitter_python", "language"),
    ".js": ("tree_sitter_javascript", "language"), ".mjs": ("tree_sitter_javascript", "language"),
    ".cjs": ("tree_sitter_javascript", "language"), ".jsx": ("tree_sitter_javascript", "language"),
    ".ts": ("tree_sitter_typescript", "language_typescript"), ".tsx": ("tree_sitter_typescript", "language_tsx"),
    ".go": ("tree_sitter_go", "language"), ".rs": ("tree_sitter_rust", "language"),
    ".json": ("tree_sitter_json", "language"), ".sh": ("tree_sitter_bash", "language"),
    ".bash": ("tree_sitter_bash", "language"), ".c": ("tree_sitter_c", "language"),
    ".h": ("tree_sitter_c", "language"), ".cc": ("tree_sitter_cpp", "language"),
    ".cpp": ("tree_sitter_cpp", "language"), ".cxx": ("tree_sitter_cpp", "language"),
    ".hpp": ("tree_sitter_cpp", "language"), ".java": ("tree_sitter_java", "language"),
    ".rb": ("tree_sitter_ruby", "language"),
}


@dataclass(frozen=True)
class SyntaxProblem:
    line: int  # 1-based
    column: int  # 1-based
    kind: str  # "error" (unexpected text) or "missing" (something expected was absent)
    token: str
    source_line: str

    def describe(self, path: str) -> str:
        what = f"missing {self.token!r}" if self.kind == "missing" else f"unexpected {self.token!r}"
        return f"{path}:{self.line}:{self.column}: syntax error ({what}):\n    {self.source_line.rstrip()}"


@lru_cache(maxsize=None)
def _parser(suffix: str) -> Parser | None:
    grammar = _GRAMMARS.get(suffix)
    if grammar is None or importlib.util.find_spec(grammar[0]) is None:
        return None
    module = importlib.import_module(grammar[0])
    return Parser(Language(getattr(module, grammar[1])()))


def _first_bad(node: Node) -> Node | None:
    if node.is_error or node.is_missing:
        return node
    if not node.has_error:
        return None
    for child in node.children:
        bad = _first_bad(child)
        if bad is not None:
            return bad
    return node


def first_problem(text: str, path: str | PurePath) -> SyntaxProblem | None:
    """The first syntax error in `text` for the language of `path`, or None (clean, or no grammar)."""
    parser = _parser(PurePath(path).suffix.lower())
    if parser is None:
        return None
    source = text.encode("utf-8")
    tree = parser.parse(source)
    if not tree.root_node.has_error:
        return None
    bad = _first_bad(tree.root_node)
    assert bad is not None
    row, col = bad.start_point
    token = bad.type if bad.is_missing else source[bad.start_byte:bad.end_byte].decode("utf-8", "replace")[:40]
    lines = text.splitlines()
    return SyntaxProblem(row + 1, col + 1, "missing" if bad.is_missing else "error", token,
                         lines[row] if row < len(lines) else "")


def check(path: str | PurePath, before: str | None, after: str, mode: SyntaxGateMode = "warn") -> SyntaxProblem | None:
    """A problem to report: `after` has errors and `before` (None for a new file) had none."""
    if mode == "off":
        return None
    if before is not None and first_problem(before, path) is not None:
        return None  # it was already broken; this edit is not to blame
    return first_problem(after, path)
