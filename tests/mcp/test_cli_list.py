"""`dsv4-code mcp list`: each server with its source, its state and the tools the model would see."""

from __future__ import annotations

import json

from ..conftest import run_cli
from .conftest import stdio_entry, write_mcp_json


def test_list_shows_ok_failed_and_tools(mcp_repo):
    repo = mcp_repo({"t": stdio_entry(), "broken": stdio_entry("--crash-on-start")})
    proc = run_cli(["mcp", "list"], repo)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "t  (.mcp.json)  ok, 8 tools"
    assert "  mcp__t__echo  Echo the text back, with the server's process id" in lines
    broken = next(line for line in lines if line.startswith("broken"))
    assert "failed: Connection closed (stderr: the test server refuses to start)" in broken


def test_list_json_and_an_untrusted_repository(mcp_repo, dsv4_home):
    repo = mcp_repo({"t": stdio_entry()}, trusted=False)
    dsv4_home.mkdir(parents=True, exist_ok=True)
    (dsv4_home / "config.toml").write_text('[mcp_servers.mine]\ncommand = "' + stdio_entry()["command"] + '"\n'
                                           f'args = ["{stdio_entry()["args"][0]}"]\n')
    proc = run_cli(["mcp", "list", "--json"], repo)
    assert proc.returncode == 0, proc.stderr
    servers = {s["name"]: s for s in json.loads(proc.stdout)["servers"]}
    assert servers["t"]["state"] == "ignored" and "untrusted" in servers["t"]["reason"] and servers["t"]["tools"] == []
    assert servers["mine"]["state"] == "ok" and servers["mine"]["source"] == "user config"
    assert {"name": "mcp__mine__add", "server_name": "add", "description": "Add two integers"} in servers["mine"]["tools"]
    trusted_once = run_cli(["mcp", "list", "--trust-repo"], repo)
    assert trusted_once.returncode == 0 and "t  (.mcp.json)  ok, 8 tools" in trusted_once.stdout


def test_list_with_nothing_configured(mcp_repo):
    repo = mcp_repo({})
    write_mcp_json(repo, {})
    proc = run_cli(["mcp", "list"], repo)
    assert proc.returncode == 0 and "no MCP servers configured" in proc.stdout
