"""Where MCP servers come from: user config (trusted) and a repository's .mcp.json, which applies only once the
repository is trusted; every problem names its file and server."""

from __future__ import annotations

import pytest

from dsv4.agent.config import load_config
from dsv4.agent.config_error import ConfigError
from dsv4.agent.mcp.config import HttpServer, StdioServer, expand, expanded

from .conftest import stdio_entry, trust, write_mcp_json

CLAUDE_CODE_FILE = {"files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
                              "env": {"LOG": "1"}},
                    "typed": {"type": "stdio", "command": "uvx", "args": ["mcp-server-git"], "disabled": False},
                    "search": {"type": "http", "url": "https://mcp.example.com/mcp",
                               "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"}}}


def test_an_untrusted_repositorys_servers_are_named_and_ignored(calc_repo):
    write_mcp_json(calc_repo, CLAUDE_CODE_FILE)
    loaded = load_config(calc_repo)
    assert loaded.settings.mcp_servers == {}
    assert loaded.ignored_mcp_servers == ["files", "search", "typed"] and loaded.project_mcp_servers == []
    notice = loaded.ignored_notice()
    assert ".mcp.json" in notice and "files, search, typed were ignored" in notice and "dsv4-code trust" in notice


def test_an_untrusted_repositorys_broken_file_breaks_nothing(calc_repo):
    (calc_repo / ".mcp.json").write_text("{ not json")
    loaded = load_config(calc_repo)
    assert loaded.settings.mcp_servers == {} and loaded.ignored_mcp_servers == []


def test_a_trusted_repositorys_claude_code_file_applies(calc_repo):
    write_mcp_json(calc_repo, CLAUDE_CODE_FILE)
    trust(calc_repo)
    loaded = load_config(calc_repo)
    servers = loaded.settings.mcp_servers
    assert loaded.project_mcp_servers == ["files", "search", "typed"] and loaded.ignored_notice() is None
    assert servers["files"] == StdioServer(command="npx", args=["-y", "@modelcontextprotocol/server-filesystem", "."],
                                           env={"LOG": "1"})
    assert isinstance(servers["search"], HttpServer) and servers["typed"].command == "uvx"


def test_trust_repo_flag_applies_it_for_one_run(calc_repo):
    write_mcp_json(calc_repo, {"t": stdio_entry()})
    assert list(load_config(calc_repo, trusted=True).settings.mcp_servers) == ["t"]


def test_user_config_servers_and_the_project_overriding_one_by_name(calc_repo, dsv4_home):
    dsv4_home.mkdir(parents=True, exist_ok=True)
    (dsv4_home / "config.toml").write_text('mcp_tool_timeout_s = 5\n[mcp_servers.mine]\ncommand = "my-server"\n'
                                           '[mcp_servers.shared]\ncommand = "user-version"\n')
    assert set(load_config(calc_repo).settings.mcp_servers) == {"mine", "shared"}
    write_mcp_json(calc_repo, {"shared": {"command": "project-version"}})
    trust(calc_repo)
    settings = load_config(calc_repo).settings
    assert settings.mcp_servers["shared"].command == "project-version" and settings.mcp_servers["mine"].command == "my-server"
    assert settings.mcp_tool_timeout_s == 5


def test_every_problem_names_the_file_and_the_server(calc_repo, dsv4_home):
    dsv4_home.mkdir(parents=True, exist_ok=True)
    (dsv4_home / "config.toml").write_text('[mcp_servers.legacy]\ntype = "sse"\nurl = "http://127.0.0.1:1/sse"\n')
    write_mcp_json(calc_repo, {"no_command": {"args": []}, "bad name": {"command": "x"},
                               "web": {"type": "http", "url": "ftp://x"}, "list": ["x"]})
    trust(calc_repo)
    with pytest.raises(ConfigError) as caught:
        load_config(calc_repo)
    text = str(caught.value)
    assert "config.toml: mcp_servers: MCP server 'legacy': type 'sse' is not supported" in text
    assert ".mcp.json: MCP server 'no_command': command: Field required" in text
    assert ".mcp.json: MCP server name 'bad name'" in text and "MCP server 'web': url" in text
    assert ".mcp.json: MCP server 'list' must be a table" in text


def test_a_trusted_file_that_is_not_json_is_a_config_error(calc_repo):
    (calc_repo / ".mcp.json").write_text('{"mcpServers": {"a": }')
    trust(calc_repo)
    with pytest.raises(ConfigError, match=r"\.mcp\.json: invalid JSON: .*line 1, column"):
        load_config(calc_repo)


def test_variables_expand_when_the_server_starts(monkeypatch):
    monkeypatch.setenv("SEARCH_TOKEN", "tok-123")
    monkeypatch.delenv("UNSET_ONE", raising=False)
    assert expand("${UNSET_ONE:-fallback}/${SEARCH_TOKEN}") == "fallback/tok-123"
    entry = expanded(HttpServer.model_validate(CLAUDE_CODE_FILE["search"]))
    assert entry.headers == {"Authorization": "Bearer tok-123"}
