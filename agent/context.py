"""The system prompt: the template from package data, repository instructions and a file listing.

Ordered most-stable-first (DESIGN.md §3) so the prefix stays cacheable across turns and sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from ..tools.listing import repo_files

INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md", ".dsv4/instructions.md")
INSTRUCTIONS_CAP = 32 * 1024
LISTING_CAP = 400


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


def file_listing(root: Path) -> str:
    files = [p.relative_to(root).as_posix() for p in repo_files(root, root)]
    shown = files[:LISTING_CAP]
    listing = "\n".join(shown) if shown else "(no files yet)"
    if len(files) > LISTING_CAP:
        listing += f"\n[{len(files) - LISTING_CAP} more files; use list_files]"
    return listing


def system_prompt(root: Path, test_command: str | None, permission_note: str = "") -> str:
    template_text = resources.files("dsv4.agent").joinpath("prompts/system.md.j2").read_text(encoding="utf-8")
    template = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(template_text)
    return template.render(repo_name=root.name, test_command=test_command, permission_note=permission_note,
                           instructions=repo_instructions(root), file_listing=file_listing(root)).strip() + "\n"
