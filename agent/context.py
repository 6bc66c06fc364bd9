"""The system prompt: the template from package data, instructions files and a file listing.

Instructions, least specific first: the user's own `<config dir>/AGENTS.md`, then the repository root's
`AGENTS.md`, `CLAUDE.md` and `.dsv4/instructions.md`. Files in subfolders are added to the conversation when
the task first touches that folder (agent/folder_instructions.py), never to this prompt, so its prefix stays
stable.

Ordered most-stable-first (docs/architecture.md, "Context assembly") so the prefix stays cacheable across
turns and sessions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ..home import config_home, dsv4_home

if TYPE_CHECKING:
    from ..tools.repo_map import RepoContext, RepoMap
    from .backends.base import Backend

INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md", ".dsv4/instructions.md")
USER_INSTRUCTIONS = "AGENTS.md"  # in the config dir
USER_INSTRUCTIONS_NAME = "your own AGENTS.md (user config)"
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


def read_instruction(path: Path, name: str, confine_to: Path | None) -> Instruction | None:
    """The file's text, capped; None when it is not a regular file or (with `confine_to`) resolves outside that
    folder: a repository's AGENTS.md that is a symlink to ~/.ssh/id_rsa must not reach the model."""
    if not path.is_file():
        return None
    if confine_to is not None and not path.resolve().is_relative_to(confine_to.resolve()):
        return None
    with path.open("rb") as handle:
        raw = handle.read(INSTRUCTIONS_CAP + 1)
    text = raw[:INSTRUCTIONS_CAP].decode("utf-8", errors="replace")
    if len(raw) > INSTRUCTIONS_CAP:
        text += f"\n[{name} truncated at {INSTRUCTIONS_CAP} bytes]"
    text = text.strip()
    return Instruction(name=name, text=text) if text else None


def repo_instructions(root: Path) -> list[Instruction]:
    """The instructions of the system prompt: the user's file, then the repository root's."""
    user = read_instruction(config_home() / USER_INSTRUCTIONS, USER_INSTRUCTIONS_NAME, confine_to=None)
    found = [user] if user is not None else []
    for name in INSTRUCTION_FILES:
        item = read_instruction(root / name, name, confine_to=root)
        if item is not None:
            found.append(item)
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
