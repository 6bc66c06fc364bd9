"""Building a session's MCP provider from the settings (user config, plus a trusted repository's `.mcp.json`)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from ...home import dsv4_home
from .config import PROJECT_FILE
from .provider import McpProvider

if TYPE_CHECKING:
    from ..config import Settings


def start_mcp(settings: Settings, repo_root: Path, secret_names: frozenset[str],
              project: Collection[str] = ()) -> McpProvider:
    """Every configured server, starting in the background (`wait_started` collects them); its stderr goes to
    `$DSV4_HOME/logs/mcp/<server>.log`."""
    servers = {name: (entry, PROJECT_FILE if name in project else "user config")
               for name, entry in settings.mcp_servers.items()}
    return McpProvider(servers, cwd=repo_root, secret_names=secret_names, call_timeout_s=settings.mcp_tool_timeout_s,
                       startup_timeout_s=settings.mcp_startup_timeout_s,
                       log_dir=dsv4_home() / "logs" / "mcp").start()
