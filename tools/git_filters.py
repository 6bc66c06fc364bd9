"""Which git filters a command could run, by name, so that tools.gitcmd can blank each one.

A filter runs when `.gitattributes` (repository content) selects `filter=NAME` and a config git reads defines
`filter.NAME.clean`, `.smudge` or `.process`. The names come from two places: the listing of every config the
command itself reads (`git config --name-only --list`, exact), and the config files of the repository's
submodules, which a child git reads when `git add` or `git status` checks whether a submodule's work tree is
dirty. Those are scanned here for `[filter "NAME"]` sections, following every `path =` line as an include:
an over-approximation, and blanking a name no config uses is harmless. The blanking travels to the child
through GIT_CONFIG_COUNT, which git passes on to submodule processes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

# `[filter "NAME"]` (NAME with \" and \\ escapes) or the old `[filter.NAME]`, anywhere on a line.
_SECTION = re.compile(r'\[\s*filter\s*(?:"((?:[^"\\\n]|\\.)*)"|\.([^\]\s]+))\s*\]', re.IGNORECASE)
_INCLUDE = re.compile(r'^\s*path\s*=\s*(.+?)\s*$', re.MULTILINE | re.IGNORECASE)
_SUBMODULE_CONFIGS = ("config", "config.worktree")


def filter_names(config_names: Iterable[str]) -> set[str]:
    """The NAMEs of every `filter.NAME.KEY` among config key names (the section is case-insensitive, NAME not)."""
    names = set()
    for key in config_names:
        section, _, rest = key.partition(".")
        name, dot, _variable = rest.rpartition(".")
        if section.lower() == "filter" and dot:
            names.add(name)
    return names


def blanked_filters(names: Iterable[str]) -> dict[str, str]:
    """Config that turns each named filter into no filter."""
    return {f"filter.{name}.{key}": value for name in sorted(names)
            for key, value in (("clean", ""), ("smudge", ""), ("process", ""), ("required", "false"))}


def config_environment(config: dict[str, str]) -> dict[str, str]:
    """`config` as GIT_CONFIG_COUNT/KEY_n/VALUE_n: command-line scope like `-c`, with no `=` parsing of the key
    (a filter name may hold one)."""
    env = {"GIT_CONFIG_COUNT": str(len(config))}
    for n, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{n}"] = key
        env[f"GIT_CONFIG_VALUE_{n}"] = value
    return env


def submodule_filter_names(work_tree: Path) -> set[str]:
    """Filter names the configs of the submodules of the repository holding `work_tree` may define."""
    common = common_git_dir(work_tree)
    modules = common / "modules" if common is not None else None
    if modules is None or not modules.is_dir():
        return set()
    names: set[str] = set()
    seen: set[Path] = set()
    for git_dir in _git_dirs_under(modules):
        for name in _SUBMODULE_CONFIGS:
            names |= _scan(git_dir / name, seen)
    return names


def common_git_dir(work_tree: Path) -> Path | None:
    """The git directory shared by the repository at or above `work_tree` and its worktrees (where `modules/` is)."""
    for folder in (work_tree, *work_tree.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            git_dir = dot_git
            break
        if dot_git.is_file():  # a worktree or a submodule: "gitdir: PATH"
            text = dot_git.read_text(errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None
            git_dir = folder / text.removeprefix("gitdir:").strip()
            break
    else:
        return None
    common = git_dir / "commondir"
    return git_dir / common.read_text(errors="replace").strip() if common.is_file() else git_dir


def _git_dirs_under(modules: Path) -> Iterator[Path]:
    """Each submodule's git directory (`modules/NAME`, NAME possibly with slashes), nested submodules too; the
    object stores in them are not walked."""
    for child in sorted(modules.iterdir()):
        if not child.is_dir() or child.is_symlink():
            continue
        if (child / "HEAD").is_file():
            yield child
            if (child / "modules").is_dir():
                yield from _git_dirs_under(child / "modules")
        else:
            yield from _git_dirs_under(child)


def _scan(path: Path, seen: set[Path]) -> set[str]:
    """Filter section names in a config file and in every file it may include."""
    if path in seen or not path.is_file():
        return set()
    seen.add(path)
    text = path.read_text(errors="surrogateescape")
    names = set()
    for quoted, old_style in _SECTION.findall(text):
        if old_style:
            names |= {old_style, old_style.lower()}  # the old syntax is case-insensitive
        else:
            names.add(re.sub(r"\\(.)", r"\1", quoted))
    for target in _INCLUDE.findall(text):
        included = Path(target.strip('"')).expanduser()
        names |= _scan(included if included.is_absolute() else path.parent / included, seen)
    return names
