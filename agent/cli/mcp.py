"""`dsv4-code mcp list [--json]`: the configured MCP servers, their state (ok / failed: reason / ignored: untrusted)
and their tools as the model sees them. Listing starts each server (that is how its tools are known) and stops it."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import LoadedSettings
    from ..repo import Repo

UNTRUSTED = "untrusted repository (trust it with 'dsv4-code trust', or --trust-repo in CI)"


def add_mcp_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("mcp", help="MCP servers (from .mcp.json and user config)")
    sub = parser.add_subparsers(dest="mcp_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="servers, their state and their tools (starts each server to ask)")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    listing.add_argument("--trust-repo", action="store_true", default=argparse.SUPPRESS,
                         help="apply this repository's .mcp.json for this listing (see 'dsv4-code trust')")
    return parser


def run_mcp_command(repo: Repo, loaded: LoadedSettings, args: argparse.Namespace) -> int:
    from ..mcp.config import PROJECT_FILE
    from ..mcp.start import start_mcp

    settings = loaded.settings
    provider = start_mcp(settings, repo.root, frozenset(filter(None, [settings.api_key_env])),
                         project=loaded.project_mcp_servers)
    try:
        provider.wait_started()
        provider.add_ignored(loaded.ignored_mcp_servers, PROJECT_FILE, UNTRUSTED)
        offered = {(tool.server, tool.remote_name): tool for tool in provider.tools()}
        servers = [{"name": status.name, "source": status.source, "state": status.state, "reason": status.reason,
                    "tools": [{"name": offered[(status.name, t.name)].name, "server_name": t.name,
                               "description": (t.description or "").strip()}
                              for t in status.tools if (status.name, t.name) in offered]}
                   for status in provider.status.values()]
    finally:
        provider.close()
    if args.json:
        print(json.dumps({"servers": servers}, indent=2))
        return 0
    if not servers:
        print(f"no MCP servers configured (add them to {PROJECT_FILE} or to mcp_servers in the user config)")
    for server in servers:
        state = f"{server['state']}: {server['reason']}" if server["reason"] else server["state"]
        count = f", {len(server['tools'])} tool{'s' * (len(server['tools']) != 1)}" if server["state"] == "ok" else ""
        print(f"{server['name']}  ({server['source']})  {state}{count}")
        for tool in server["tools"]:
            summary = tool["description"].splitlines()[0][:80] if tool["description"] else ""
            print(f"  {tool['name']}" + (f"  {summary}" if summary else ""))
    return 0
