"""MCP server entries: Claude Code's `mcpServers` table, read from a project's `.mcp.json` and from user config.

    {"mcpServers": {"files": {"command": "npx", "args": ["-y", "some-server"], "env": {"ROOT": "."}},
                    "search": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "..."}}}}

A stdio entry may say `"type": "stdio"` or nothing; `${VAR}` and `${VAR:-default}` in command, args, env
values, url and headers are read from the environment when the server starts (as Claude Code does). Keys
this client does not use are ignored, so a file written for Claude Code reads unchanged.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROJECT_FILE = ".mcp.json"
# Server names become part of tool names (`mcp__<server>__<tool>`), which models accept only in this alphabet.
SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class StdioServer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["stdio"] = "stdio"
    command: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)


class HttpServer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["http", "streamable-http"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)


ServerEntry = StdioServer | HttpServer


class MissingVariable(Exception):
    """A `${VAR}` in a server entry names a variable that is not set and has no default."""


def expand(text: str, environ: dict[str, str] | None = None) -> str:
    environ = dict(os.environ) if environ is None else environ

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise MissingVariable(f"the environment variable {name} is not set")

    return _VARIABLE.sub(value, text)


def expanded(entry: ServerEntry) -> ServerEntry:
    """The entry with every `${VAR}` replaced; raises MissingVariable."""
    if isinstance(entry, StdioServer):
        return entry.model_copy(update={"command": expand(entry.command), "args": [expand(a) for a in entry.args],
                                        "env": {k: expand(v) for k, v in entry.env.items()}})
    return entry.model_copy(update={"url": expand(entry.url), "headers": {k: expand(v) for k, v in entry.headers.items()}})


def parse_servers(table: Any, where: str, problems: list[str]) -> dict[str, ServerEntry]:
    """The valid entries of an `mcpServers` table; each bad one becomes a problem naming `where` and the server."""
    if not isinstance(table, dict):
        problems.append(f"{where}: mcpServers must be a table of servers (got {type(table).__name__})")
        return {}
    servers: dict[str, ServerEntry] = {}
    for name, value in table.items():
        if not SERVER_NAME.match(name):
            problems.append(f"{where}: MCP server name {name!r} must be 1-32 letters, digits, '_' or '-'")
            continue
        if isinstance(value, (StdioServer, HttpServer)):
            servers[name] = value
            continue
        if not isinstance(value, dict):
            problems.append(f"{where}: MCP server {name!r} must be a table (got {type(value).__name__})")
            continue
        kind = value.get("type", "stdio")
        if kind not in ("stdio", "http", "streamable-http"):
            problems.append(f"{where}: MCP server {name!r}: type {kind!r} is not supported (use 'stdio' or 'http')")
            continue
        model = StdioServer if kind == "stdio" else HttpServer
        try:
            servers[name] = model.model_validate(value)
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors())
            problems.append(f"{where}: MCP server {name!r}: {details}")
    return servers


def project_file(repo_root: Path) -> Path:
    return repo_root / PROJECT_FILE


def read_project_servers(path: Path, problems: list[str]) -> dict[str, ServerEntry]:
    """The servers of a project's `.mcp.json`; every problem (not JSON, a bad entry) names the file."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text")
        return {}
    except json.JSONDecodeError as exc:
        problems.append(f"{path}: invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
        return {}
    except RecursionError:
        problems.append(f"{path}: invalid JSON: nested too deeply")
        return {}
    except OSError as exc:
        problems.append(f"{path}: cannot be read ({exc.strerror or exc})")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: must hold a JSON object with an \"mcpServers\" table")
        return {}
    return parse_servers(data.get("mcpServers", {}), str(path), problems)


def project_server_names(path: Path) -> list[str]:
    """The names an untrusted `.mcp.json` declares, read without judging the entries (they are not applied)."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return []
    table = data.get("mcpServers") if isinstance(data, dict) else None
    return sorted(str(name) for name in table) if isinstance(table, dict) else []
