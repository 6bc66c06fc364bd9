"""What `run_tests(args)` accepts: test selectors, not a command line.

`args` is split into words and each word must be a selector for the repository's runner: a path (or a
pytest node id `path::name[param]`) inside the repository, a name filter (`-k EXPR`, `-m MARKEXPR`,
`-run REGEX`, `-t NAME`), or one of a few harmless options per runner. Anything else (`-p plugin`,
`--rootdir`, `-c file`, `--basetemp`, shell syntax) is refused with the list of what is accepted, so
no argument can load code, write elsewhere or reach a shell.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .test_env import RunnerKind, shell_syntax


class SelectorError(ValueError):
    pass


@dataclass(frozen=True)
class Grammar:
    flags: frozenset[str]  # options without a value
    valued: dict[str, Callable[[str], bool]]  # option -> check of its value (next word, or after '=')
    positional: str  # "path" (file / node id / package inside the repo) or "name" (a filter word)
    after_dashdash: frozenset[str] = field(default_factory=frozenset)  # cargo: options for the test binary


def _any_text(value: str) -> bool:
    return bool(value) and "\n" not in value and not value.startswith("-")


def _number(value: str) -> bool:
    return value.isdigit()


def _pytest_tb(value: str) -> bool:
    return value in {"auto", "long", "short", "line", "native", "no"}


_NAME = re.compile(r"^[\w:.\-]+$")


def _name(value: str) -> bool:
    return bool(_NAME.match(value)) and not value.startswith("-")


GRAMMARS: dict[RunnerKind, Grammar] = {
    "pytest": Grammar(
        flags=frozenset({"-x", "--exitfirst", "-q", "--quiet", "-v", "--verbose", "-vv", "-s", "--lf",
                         "--last-failed", "--ff", "--failed-first", "--sw", "--stepwise", "-l", "--showlocals",
                         "--no-header", "--co", "--collect-only", "-ra", "-rA", "--runxfail", "--strict-markers",
                         "--no-summary"}),
        valued={"-k": _any_text, "-m": _any_text, "--maxfail": _number, "--tb": _pytest_tb,
                "--durations": _number, "--deselect": lambda v: True},
        positional="path"),
    "npm": Grammar(flags=frozenset({"--verbose", "--silent"}),
                   valued={"-t": _any_text, "--testNamePattern": _any_text}, positional="path"),
    "cargo": Grammar(flags=frozenset({"--lib", "--bins", "--tests", "--doc", "--release", "--all-features"}),
                     valued={"--test": _name, "-p": _name, "--package": _name}, positional="name",
                     after_dashdash=frozenset({"--exact", "--nocapture", "--ignored", "--include-ignored",
                                               "--show-output"})),
    "go": Grammar(flags=frozenset({"-v", "-short", "-race", "-failfast"}),
                  valued={"-run": _any_text, "-count": _number, "-skip": _any_text}, positional="path"),
    "other": Grammar(flags=frozenset(), valued={}, positional="path"),
}


def split_args(args: str) -> list[str]:
    bad = shell_syntax(args)
    if bad:
        raise SelectorError(f"args hold shell syntax ({bad}); run_tests takes test selectors and runs no shell")
    try:
        return shlex.split(args)
    except ValueError as exc:
        raise SelectorError(f"args {args!r} cannot be split into words: {exc}") from None


def check_selectors(args: str, kind: RunnerKind, resolve: Callable[[str], Path]) -> list[str]:
    """The words of `args`, each checked against the runner's grammar; `resolve` confines a path (raises)."""
    grammar = GRAMMARS[kind]
    words = split_args(args)
    checked: list[str] = []
    binary_options = False
    k = 0
    while k < len(words):
        word = words[k]
        if "\0" in word:
            raise SelectorError("test selectors may not contain NUL bytes")
        if word == "--" and grammar.after_dashdash and not binary_options:
            binary_options = True
        elif binary_options:
            if word.split("=", 1)[0] not in grammar.after_dashdash and not _name(word):
                raise _refusal(word, kind, grammar)
        elif word.startswith("-"):
            name, has_value, value = word.partition("=")
            if name in grammar.flags and not has_value:
                pass
            elif name in grammar.valued:
                if not has_value:
                    k += 1
                    if k == len(words):
                        raise SelectorError(f"{name} needs a value")
                    value = words[k]
                    checked.append(word)
                    word = value
                if not grammar.valued[name](value):
                    raise SelectorError(f"{value!r} is not a valid value for {name}")
                if name == "--deselect":
                    _check_path(value, resolve)
            else:
                raise _refusal(word, kind, grammar)
        elif grammar.positional == "path":
            _check_path(word, resolve)
        elif not _name(word):
            raise SelectorError(f"{word!r} is not a test name filter")
        checked.append(word)
        k += 1
    return checked


def _check_path(word: str, resolve: Callable[[str], Path]) -> None:
    """A file, folder, node id (`path::Class::test[param]`) or go package (`./pkg/...`) inside the repo."""
    path = word.split("::", 1)[0]
    path = path[:-4] if path.endswith("/...") else ("." if path == "..." else path)
    if not resolve(path).exists():
        raise SelectorError(f"{word!r}: no such file or folder in the repository")


def _refusal(word: str, kind: RunnerKind, grammar: Grammar) -> SelectorError:
    accepted = sorted(grammar.flags) + [f"{v} VALUE" for v in grammar.valued]
    what = "paths or node ids inside the repository" if grammar.positional == "path" else "test name filters"
    return SelectorError(f"{word!r} is not accepted by run_tests ({kind}); args take {what}"
                         + (f" and these options: {', '.join(accepted)}" if accepted else ""))
