"""The system prompt: the template from package data, repository instructions and a file listing.

Ordered most-stable-first (docs/architecture.md, "Context assembly") so the prefix stays cacheable across
turns and sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..home import dsv4_home

if TYPE_CHECKING:
    from ..tools.repo_map import RepoContext, RepoMap
    from .backends.base import Backend

INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md", ".dsv4/instructions.md")
INSTRUCTIONS_CAP = 32 * 1024
DEFAULT_WINDOW = 131072  # when neither the backend nor the config says


def repo_budget(context_window: int) -> int:
    """Tokens the repository block may take: half the window, leaving the rest to the conversation."""
    return max(4096, context_window // 2)


def backend_token_counter(backend: Backend) -> Callable[[str], int]:
    """Adapt `Backend.count_tokens(messages)` to the `count_tokens(text)` the loader takes."""
    from .messages import Message

    overhead = backend.count_tokens([Message(role="user", content="")])

    def count(text: str) -> int:
        return max(0, backend.count_tokens([Message(role="user", content=text)]) - overhead)

    return count


@dataclass
class Instruction:
    name: str
    text: str


def repo_instructions(root: Path) -> list[Instruction]:
    found = []
    for name in INSTRUCTION_FILES:
        path = root / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if len(text) > INSTRUCTIONS_CAP:
                text = text[:INSTRUCTIONS_CAP] + f"\n[{name} truncated at {INSTRUCTIONS_CAP} bytes]"
            found.append(Instruction(name=name, text=text.strip()))
    return found


def repository_block(root: Path, budget_tokens: int, count_tokens: Callable[[str], int] | None,
                     repo_map: RepoMap | None = None) -> RepoContext:
    """The repo map and whole files; built once per session so the prompt prefix stays valid
    (docs/architecture.md, "Context assembly"). `repo_map`: one already refreshed (session_repo_map)."""
    from ..tools.repo_map import build_repo_context

    return build_repo_context(root, budget_tokens, count_tokens=count_tokens, cache_dir=dsv4_home() / "repomap",
                              repo_map=repo_map)


def session_repo_map(root: Path) -> RepoMap:
    """A repo map on the on-disk tag cache: the session builds its block from it and its watcher keeps it fresh."""
    from ..tools.repo_map import RepoMap, TagCache

    return RepoMap(root, TagCache(dsv4_home() / "repomap"))


def system_prompt(root: Path, test_command: str | None, repository: str, permission_note: str = "",
                  memory: str = "", instructions: list[Instruction] | None = None) -> str:
    """`instructions`: a snapshot taken at session start (agent/prefix.py); None reads the files now."""
    import jinja2  # here, so the CLI's parser (which budgets with repo_budget) starts without it

    template_text = resources.files("dsv4.agent").joinpath("prompts/system.md.j2").read_text(encoding="utf-8")
    template = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(template_text)
    return template.render(repo_name=root.name, test_command=test_command, permission_note=permission_note,
                           instructions=repo_instructions(root) if instructions is None else instructions,
                           repository=repository,
                           memory=memory.strip()).strip() + "\n"
