"""`dsv4-code trust [--revoke | --list]`: let this repository's own `.dsv4/config.toml` apply (agent/trust.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..repo import Repo


def add_trust_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "trust", help="trust this repository's own config (.dsv4/config.toml, .mcp.json)",
        description="A repository's .dsv4/config.toml can set the model endpoint, the key variable, the test command "
                    "and the permission mode, so it applies only once you trust the repository. Trust is recorded "
                    "by repository identity (root commit and origin remote) in trusted_repos.json in the config dir.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--revoke", action="store_true", help="stop trusting this repository")
    group.add_argument("--list", action="store_true", help="list the trusted repositories")
    return parser


def run_trust_command(repo: Repo, args: argparse.Namespace) -> int:
    from ..trust import revoke, trust_repo, trusted_repos

    if args.list:
        records = trusted_repos()
        for identity, record in records.items():
            print(f"{identity}  {record.root or ''}")
        if not records:
            print("no trusted repositories")
        return 0
    if args.revoke:
        was = revoke(repo.identity)
        print(f"{repo.root}: {'no longer trusted' if was else 'was not trusted'}")
        return 0
    trust_repo(repo.identity, repo.root)
    print(f"{repo.root}: trusted; its .dsv4/config.toml and .mcp.json now apply (undo with 'dsv4-code trust --revoke')")
    return 0
