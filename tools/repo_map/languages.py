"""Grammar loading: one tree-sitter grammar wheel per language, imported only when first needed."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from .queries import QUERIES

if TYPE_CHECKING:
    from tree_sitter import Language, Query

# language -> (wheel module, function returning the grammar pointer)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}


@dataclass(frozen=True)
class Grammar:
    name: str
    language: Language
    query: Query


def has_grammar(language: str | None) -> bool:
    return language in GRAMMARS


@cache
def grammar(language: str) -> Grammar:
    from tree_sitter import Language, Query

    module_name, function = GRAMMARS[language]
    lang = Language(getattr(importlib.import_module(module_name), function)())
    return Grammar(name=language, language=lang, query=Query(lang, QUERIES[language]))
