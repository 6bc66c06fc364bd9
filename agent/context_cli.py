"""`dsv4-code context [--explain] [--budget TOKENS] [--json]`: what of the repository goes into context.

Wiring (agent/cli.py): `add_context_parser(sub)` in build_parser, then for `args.command == "context"`
call `run_context_command(args, repo, default_budget=...)` once the repo is found. Nothing heavy is
imported at module level: the tree-sitter and numpy work starts only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .repo import Repo

EXIT_USAGE = 2
DEFAULT_WINDOW = 131072


def repo_budget(context_window: int) -> int:
    """Tokens the repository block may take: half the window, leaving the rest to the conversation."""
    return max(4096, context_window // 2)


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


def backend_token_counter(backend: Any) -> Callable[[str], int]:
    """Adapt `Backend.count_tokens(messages)` to the `count_tokens(text)` the loader takes."""
    from .messages import Message

    overhead = backend.count_tokens([Message(role="user", content="")])

    def count(text: str) -> int:
        return max(0, backend.count_tokens([Message(role="user", content=text)]) - overhead)

    return count


def run_context_command(args: argparse.Namespace, repo: Repo, default_budget: int | None = None,
                        count_tokens: Callable[[str], int] | None = None) -> int:
    budget = args.budget if args.budget is not None else (default_budget or repo_budget(DEFAULT_WINDOW))
    if budget <= 0:
        print(f"dsv4-code: error: --budget must be a positive number of tokens, not {budget}", file=sys.stderr)
        return EXIT_USAGE
    from ..tools.repo_map import build_repo_context
    from ..home import dsv4_home

    ctx = build_repo_context(repo.root, budget, count_tokens=count_tokens, cache_dir=dsv4_home() / "repomap")
    if args.json:
        doc = ctx.to_json()
        doc["token_counter"] = "model tokenizer" if count_tokens else "approximate (3.5 UTF-8 bytes a token)"
        print(json.dumps(doc, indent=2))
        return 0
    from ..tools.repo_map.explain import explain_text

    sys.stdout.write(explain_text(ctx, verbose=args.explain))
    if count_tokens is None:
        print("Token counts are approximate (3.5 UTF-8 bytes a token); the model's tokenizer may differ.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry for tests and debugging: `python -m dsv4.agent.context_cli [flags]` in a repo."""
    from pathlib import Path

    from .repo import NotARepository, find_repo

    parser = argparse.ArgumentParser(prog="dsv4-code")
    add_context_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["context", *(argv if argv is not None else sys.argv[1:])])
    try:
        repo = find_repo(Path.cwd())
    except NotARepository as exc:
        print(f"dsv4-code: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_context_command(args, repo)


if __name__ == "__main__":
    raise SystemExit(main())
