"""`/init` and `dsv4-code init`: a starting AGENTS.md for the repository, drafted from the repo map.

No model writes it: the layout, the languages, the most central files (the repo map's ranking, with their main
definitions), the README's first paragraph and the detected test command, plus headings for what only the
user knows. Written atomically; an existing AGENTS.md is never overwritten without `force`.
"""

from __future__ import annotations

import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..home import dsv4_home
from ..tools.test_env import detect_test_runner
from ..tools.workspace import atomic_write
from .errors import SessionCommandError

AGENTS_FILE = "AGENTS.md"
README_NAMES = ("README.md", "README.rst", "README.txt", "README")
LAYOUT_ENTRIES = 20  # top-level entries listed
CENTRAL_FILES = 10  # files of the ranking listed
NAMES_PER_FILE = 6
README_CHARS = 600
# The definitions worth naming in a summary: types and functions, not fields, variables or methods.
NAMED_KINDS = frozenset({"class", "function", "interface", "struct", "trait", "enum", "type", "module", "namespace",
                         "union", "macro"})


class AgentsFileExists(SessionCommandError):
    """AGENTS.md is there already; `force` replaces it."""


@dataclass
class InitResult:
    path: Path
    text: str
    replaced: bool  # an earlier AGENTS.md was overwritten (force)


def _readme_paragraph(root: Path) -> str:
    for name in README_NAMES:
        path = root / name
        if path.is_file() and path.resolve().is_relative_to(root.resolve()):
            with path.open("rb") as handle:
                text = handle.read(64 * 1024).decode("utf-8", "replace")
            for block in text.split("\n\n"):
                lines = [line.strip() for line in block.strip().splitlines()]
                if lines and not lines[0].startswith(("#", "=", "[![", "<", "!", "```")) and not set(lines[0]) <= set("=-*"):
                    paragraph = " ".join(lines)
                    return paragraph if len(paragraph) <= README_CHARS else paragraph[:README_CHARS].rsplit(" ", 1)[0] + " …"
    return ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def draft_agents_md(root: Path) -> str:
    """The text of a starting AGENTS.md for the repository at `root`."""
    from ..tools.repo_map import RepoMap, TagCache
    from ..tools.repo_map.rank import is_vendored

    repo_map = RepoMap(root, TagCache(dsv4_home() / "repomap"))
    repo_map.refresh()
    files = {path: f for path, f in repo_map.files.items() if not is_vendored(path)}
    languages = Counter(f.language for f in files.values() if f.language)
    ranking = repo_map.ranking()
    names: dict[str, list[str]] = defaultdict(list)
    for _, path, definition in ranking.defs:
        if definition.kind not in NAMED_KINDS or definition.scopes or definition.name.startswith("_"):
            continue
        if len(names[path]) < NAMES_PER_FILE and definition.name not in names[path]:
            names[path].append(definition.name)

    lines = [f"# {AGENTS_FILE}", "",
             "Instructions for coding agents working in this repository (dsv4-code, Codex CLI, opencode and others "
             "read this file; a folder's own AGENTS.md adds to it for the files under that folder). This draft was "
             "made by `dsv4-code init` from the repository map: correct it, and add what only you know.", "",
             "## Project", ""]
    readme = _readme_paragraph(root)
    lines += [readme, ""] if readme else ["(What this project is and who uses it.)", ""]
    summary = ", ".join(f"{language} ({_plural(count, 'file')})" for language, count in languages.most_common(6))
    lines += [f"{_plural(len(files), 'file')}" + (f"; languages: {summary}." if summary else "."), ""]

    lines += ["## Layout", ""]
    top: dict[str, list[str]] = defaultdict(list)
    for path in files:
        top[path.split("/", 1)[0] + ("/" if "/" in path else "")].append(path)
    by_weight = sorted(top, key=lambda entry: (-sum(ranking.file_rank.get(p, 0.0) for p in top[entry]), entry))
    for entry in sorted(by_weight[:LAYOUT_ENTRIES]):
        if entry.endswith("/"):
            kinds = Counter(files[p].language for p in top[entry] if files[p].language)
            kind = f", mostly {kinds.most_common(1)[0][0]}" if kinds else ""
            lines.append(f"- `{entry}`: {_plural(len(top[entry]), 'file')}{kind}")
        else:
            lines.append(f"- `{entry}`")
    if len(top) > LAYOUT_ENTRIES:
        lines.append(f"- … and {len(top) - LAYOUT_ENTRIES} more")
    lines.append("")

    central = [path for path in ranking.files_by_rank() if path in files and names.get(path)][:CENTRAL_FILES]
    if central:
        lines += ["## Central code", "", "The files the rest of the code refers to most (repo map ranking):", ""]
        lines += [f"- `{path}`: {', '.join(names[path])}" for path in central]
        lines.append("")

    runner = detect_test_runner(root)
    # `python -m pytest -q`, not this machine's /home/me/.venv/bin/python: the file is shared
    test_command = shlex.join([Path(runner.argv[0]).name, *runner.argv[1:]]) if runner else None
    lines += ["## Build and test", ""]
    lines.append(f"- Run the tests with `{test_command}`." if test_command else "- (How to run the tests.)")
    lines += ["- (How to build, lint and type-check; what must pass before a change is done.)", "",
              "## Conventions", "",
              "- (Code style, naming, error handling, and what a good change looks like here.)",
              "- (Files or folders that must not be edited, e.g. generated code.)", ""]
    return "\n".join(lines)


def write_agents_md(root: Path, force: bool = False) -> InitResult:
    """Draft and write `root/AGENTS.md` atomically; AgentsFileExists when one is there and not `force`."""
    path = root / AGENTS_FILE
    exists = path.exists() or path.is_symlink()
    if exists and not force:
        raise AgentsFileExists(f"{path} exists already; it was left as it is (--force, or /init --force, replaces it)")
    text = draft_agents_md(root)
    atomic_write(path, text.encode("utf-8"))  # the rename replaces a symlink itself, never writes through it
    return InitResult(path=path, text=text, replaced=exists)
