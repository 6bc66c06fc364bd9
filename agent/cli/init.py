"""`dsv4-code init [--force] [--print]`: write a starting AGENTS.md from the repo map (agent/init_file.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..repo import Repo


def add_init_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "init", help="write a starting AGENTS.md for this repository",
        description="Drafts AGENTS.md in the repository root from the repo map (layout, languages, central files, "
                    "the test command), for you to correct and extend. An existing AGENTS.md is left alone "
                    "unless --force is given.")
    parser.add_argument("--force", action="store_true", help="replace an existing AGENTS.md")
    parser.add_argument("--print", dest="print_only", action="store_true", help="print the draft instead of writing it")
    return parser


def run_init_command(repo: Repo, args: argparse.Namespace) -> int:
    from ..init_file import draft_agents_md, write_agents_md

    if args.print_only:
        print(draft_agents_md(repo.root), end="")
        return 0
    result = write_agents_md(repo.root, force=args.force)  # AgentsFileExists: exit 1 with its message (errors.py)
    verb = "replaced" if result.replaced else "wrote"
    print(f"{verb} {result.path} ({len(result.text.splitlines())} lines): review it; every session reads it")
    return 0
