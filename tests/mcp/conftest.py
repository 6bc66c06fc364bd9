"""Real MCP servers for the tests: the SDK server in tool_server.py over stdio (started by the client under test)
or over streamable HTTP on 127.0.0.1 (started here), and repositories whose .mcp.json names them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dsv4.agent.repo import find_repo
from dsv4.agent.trust import trust_repo

from ..conftest import git

TOOL_SERVER = Path(__file__).with_name("tool_server.py")
START_S = 30


def stdio_entry(*extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(TOOL_SERVER), *extra], "env": env or {}}


def write_mcp_json(repo: Path, servers: dict[str, Any]) -> Path:
    path = repo / ".mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return path


def trust(repo: Path) -> None:
    trust_repo(find_repo(repo).identity, repo)


def assert_gone(pid: int, within_s: float = 5) -> None:
    """The process `pid` (an MCP server) exits within `within_s`."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"the MCP server process {pid} is still running")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    """tool_server.py serving streamable HTTP on a free loopback port; its URL."""
    port = free_port()
    log = (tmp_path / "http-server.log").open("w")
    proc = subprocess.Popen([sys.executable, str(TOOL_SERVER), "--http", str(port)], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "http-server.log").read_text()
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture
def mcp_repo(tmp_path: Path) -> Callable[..., Path]:
    """A git repository without tests (so a headless run that is done exits 0) whose .mcp.json names the stdio
    test server as "t" (or the given servers), trusted unless told otherwise."""
    def make(servers: dict[str, Any] | None = None, trusted: bool = True) -> Path:
        root = tmp_path / "mcp-repo"
        root.mkdir()
        (root / "README.md").write_text("# a repository with MCP servers\n")
        write_mcp_json(root, servers if servers is not None else {"t": stdio_entry()})
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "initial")
        if trusted:
            trust(root)
        return root
    return make


def calls(*steps: tuple[str, dict[str, Any]], final: str = "done") -> list[dict[str, Any]]:
    """A scripted model that makes these tool calls, one a turn, then answers `final`."""
    return [{"content": "", "tool_calls": [{"name": name, "arguments": arguments}]} for name, arguments in steps] + \
        [{"content": final}]
