"""The system prompt: the template from package data, repository instructions and a file listing.

Ordered most-stable-first (DESIGN.md §3) so the prefix stays cacheable across turns and sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from ..home import dsv4_home

if TYPE_CHECKING:
    from ..tools.repo_map import RepoContext

INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md", ".dsv4/instructions.md")
INSTRUCTIONS_CAP = 32 * 1024


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


def repository_block(root: Path, budget_tokens: int, count_tokens: Callable[[str], int] | None) -> RepoContext:
    """The repo map and whole files; built once per session so the prompt prefix stays valid (DESIGN.md §3)."""
    from ..tools.repo_map import build_repo_context

    return build_repo_context(root, budget_tokens, count_tokens=count_tokens, cache_dir=dsv4_home() / "repomap")


def system_prompt(root: Path, test_command: str | None, repository: str, permission_note: str = "",
                  memory: str = "") -> str:
    template_text = resources.files("dsv4.agent").joinpath("prompts/system.md.j2").read_text(encoding="utf-8")
    template = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(template_text)
    return template.render(repo_name=root.name, test_command=test_command, permission_note=permission_note,
                           instructions=repo_instructions(root), repository=repository,
                           memory=memory.strip()).strip() + "\n"
