"""`dsv4-code context [--explain] [--budget TOKENS] [--json]`: what of the repository goes into context.

A thin adapter over the repository block the session builds (agent/context.py, tools/repo_map). Nothing
heavy is imported at module level: the tree-sitter and numpy work starts only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..context import DEFAULT_WINDOW, repo_budget
from .errors import fail

if TYPE_CHECKING:
    from ..repo import Repo


def add_context_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("context", help="what of the repository goes into context",
                                   description="Show which files go into the model's context whole, which appear "
                                               "in the repo map only, the token counts and the build time.")
    parser.add_argument("--explain", action="store_true", help="also say why: ranks, skipped files, timings")
    parser.add_argument("--budget", type=int, metavar="TOKENS",
                        help=f"token budget of the repository block (default: half the model's context window, "
                             f"{repo_budget(DEFAULT_WINDOW):,} when it is unknown)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    return parser


def run_context_command(args: argparse.Namespace, repo: Repo, default_budget: int | None = None,
                        count_tokens: Callable[[str], int] | None = None) -> int:
    budget = args.budget if args.budget is not None else (default_budget or repo_budget(DEFAULT_WINDOW))
    if budget <= 0:
        return fail(f"--budget must be a positive number of tokens, not {budget}")
    from ..context import repository_block

    ctx = repository_block(repo.root, budget, count_tokens)
    if args.json:
        doc = ctx.to_json()
        doc["token_counter"] = "model tokenizer" if count_tokens else "approximate (3.5 UTF-8 bytes a token)"
        print(json.dumps(doc, indent=2))
        return 0
    from ...tools.repo_map.explain import explain_text

    sys.stdout.write(explain_text(ctx, verbose=args.explain))
    if count_tokens is None:
        print("Token counts are approximate (3.5 UTF-8 bytes a token); the model's tokenizer may differ.")
    return 0
