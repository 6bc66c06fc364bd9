"""Real MCP servers for the tests: the SDK server in tool_server.py over stdio (started by the client under test)
or over streamable HTTP on 127.0.0.1 (started here), and repositories whose .mcp.json names them."""

from __future__ import annotations

import json
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
def mcp_repo(calc_repo: Path) -> Callable[..., Path]:
    """calc_repo with a .mcp.json naming the stdio test server as "t" (or the given servers), trusted unless told."""
    def make(servers: dict[str, Any] | None = None, trusted: bool = True) -> Path:
        write_mcp_json(calc_repo, servers if servers is not None else {"t": stdio_entry()})
        if trusted:
            trust(calc_repo)
        return calc_repo
    return make
