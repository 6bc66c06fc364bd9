"""The provider against the real SDK server over stdio and HTTP: results as text, errors, a crash restarted once,
a hang cut at the timeout, cancel, the safe environment, and servers that cannot start."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from dsv4.agent.mcp.config import HttpServer, StdioServer
from dsv4.agent.mcp.provider import McpProvider
from dsv4.agent.mcp.tools import tool_name
from dsv4.tools.base import ToolError
from dsv4.tools.workspace import Workspace

from .conftest import assert_gone, stdio_entry
from .tool_server import PNG


def provider(tmp_path: Path, servers: dict, **kwargs) -> McpProvider:
    entries = {name: (StdioServer.model_validate(e) if "command" in e else HttpServer.model_validate(e), "test")
               for name, e in servers.items()}
    return McpProvider(entries, cwd=tmp_path, log_dir=tmp_path / "logs", **kwargs).start().wait_started()


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


def run(mcp: McpProvider, name: str, workspace: Workspace, **arguments) -> tuple[bool, str]:
    """Call one offered tool the way the toolbox does: validate, then run; (is_error, text)."""
    tool = {t.name: t for t in mcp.tools()}[name]
    try:
        result = tool.run(tool.Args.model_validate(arguments), workspace)
    except ToolError as exc:
        return True, f"error: {exc}"
    return result.is_error, result.text


def test_tools_are_named_and_their_results_read_as_text(tmp_path, workspace):
    mcp = provider(tmp_path, {"t": stdio_entry()})
    try:
        tools = {t.name: t for t in mcp.tools()}
        assert {"mcp__t__echo", "mcp__t__picture", "mcp__t__fail", "mcp__t__crash"} <= set(tools)
        schema = tools["mcp__t__add"].Args.model_json_schema()
        assert schema["type"] == "object" and set(schema["required"]) == {"a", "b"} and "title" not in schema
        assert run(mcp, "mcp__t__echo", workspace, text="hi")[1].startswith("echo: hi")
        assert run(mcp, "mcp__t__picture", workspace) == (False, f"a red dot\n[image: image/png, {len(PNG)} bytes]")
        is_error, text = run(mcp, "mcp__t__fail", workspace, reason="because")
        assert is_error and text.startswith("error: ") and "fail" in text
    finally:
        mcp.close()


def test_arguments_are_checked_against_the_servers_schema():
    from dsv4.agent.mcp.tools import args_model
    from pydantic import ValidationError

    model = args_model({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    assert model.model_validate({"a": 1}).model_dump() == {"a": 1}
    with pytest.raises(ValidationError, match="'x' is not of type 'integer'"):
        model.model_validate({"a": "x"})


def test_names_fit_what_models_accept():
    assert tool_name("files", "read.file/v2") == "mcp__files__read_file_v2"
    assert len(tool_name("s" * 32, "t" * 80)) == 64


def test_a_crashed_server_is_restarted_once_then_stays_stopped(tmp_path, workspace):
    mcp = provider(tmp_path, {"t": stdio_entry()})
    try:
        first_pid = run(mcp, "mcp__t__echo", workspace, text="a")[1].split("pid ")[1]
        is_error, text = run(mcp, "mcp__t__crash", workspace)
        assert is_error and "crashed or exited" in text and "started again for the next call" in text
        is_error, text = run(mcp, "mcp__t__echo", workspace, text="b")
        assert not is_error and text.split("pid ")[1] != first_pid  # a new process
        is_error, text = run(mcp, "mcp__t__crash", workspace)
        assert is_error and "already restarted once" in text
        is_error, text = run(mcp, "mcp__t__echo", workspace, text="c")
        assert is_error and "is stopped" in text
        assert mcp.status["t"].state == "failed" and mcp.status["t"].restarts == 1
    finally:
        mcp.close()


def test_a_call_that_hangs_ends_at_the_timeout_and_the_server_keeps_serving(tmp_path, workspace):
    mcp = provider(tmp_path, {"t": stdio_entry()}, call_timeout_s=1.0)
    try:
        started = time.monotonic()
        is_error, text = run(mcp, "mcp__t__hang", workspace, seconds=60)
        elapsed = time.monotonic() - started
        assert is_error and "did not answer hang within 1 s" in text and elapsed < 3
        assert run(mcp, "mcp__t__echo", workspace, text="still here")[0] is False
    finally:
        mcp.close()


def test_the_run_deadline_and_cancel_stop_a_call(tmp_path, workspace):
    mcp = provider(tmp_path, {"t": stdio_entry()}, call_timeout_s=60)
    try:
        workspace.deadline = time.monotonic() + 0.5
        started = time.monotonic()
        assert run(mcp, "mcp__t__hang", workspace, seconds=60)[0] and time.monotonic() - started < 2.5
        workspace.deadline = None
        threading.Timer(0.3, workspace.cancel_event.set).start()
        started = time.monotonic()
        is_error, text = run(mcp, "mcp__t__hang", workspace, seconds=60)
        assert is_error and "cancelled" in text and time.monotonic() - started < 2.5
    finally:
        mcp.close()


def test_stdio_servers_get_no_secrets_but_their_own_env(tmp_path, workspace, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deepseek-secret")
    monkeypatch.setenv("DSV4_API_TOKEN", "dsv4-secret")
    monkeypatch.setenv("MY_BACKEND_KEY", "backend-secret")
    monkeypatch.setenv("PLAIN_SETTING", "kept")
    entries = {"t": (StdioServer.model_validate(stdio_entry(env={"SERVER_ONLY": "given"})), "test")}
    mcp = McpProvider(entries, cwd=tmp_path, secret_names=frozenset({"MY_BACKEND_KEY"})).start().wait_started()
    try:
        _, text = run(mcp, "mcp__t__env", workspace,
                      names=["DEEPSEEK_API_KEY", "DSV4_API_TOKEN", "MY_BACKEND_KEY", "PLAIN_SETTING", "SERVER_ONLY"])
        assert text.splitlines() == ["DEEPSEEK_API_KEY=<unset>", "DSV4_API_TOKEN=<unset>", "MY_BACKEND_KEY=<unset>",
                                     "PLAIN_SETTING=kept", "SERVER_ONLY=given"]
    finally:
        mcp.close()


def test_servers_that_cannot_start_are_warnings_and_the_others_work(tmp_path, workspace, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    mcp = provider(tmp_path, {"ok": stdio_entry(), "refuses": stdio_entry("--crash-on-start"),
                              "missing": {"command": str(tmp_path / "no-such-program")},
                              "needs_var": {"command": "${NO_SUCH_VARIABLE}"}})
    try:
        warnings = "\n".join(mcp.warnings)
        assert "'refuses' failed to start" in warnings and "the test server refuses to start" in warnings
        assert "'missing' failed to start: No such file or directory" in warnings
        assert "'needs_var' failed to start: the environment variable NO_SUCH_VARIABLE is not set" in warnings
        assert {t.name.split("__")[1] for t in mcp.tools()} == {"ok"}
        assert mcp.status["ok"].state == "ok" and mcp.status["refuses"].state == "failed"
        assert run(mcp, "mcp__ok__add", workspace, a=2, b=3) == (False, "5")
    finally:
        mcp.close()


def test_a_server_that_never_answers_fails_at_the_startup_timeout(tmp_path):
    started = time.monotonic()
    mcp = provider(tmp_path, {"mute": {"command": sys.executable, "args": ["-c", "import time; time.sleep(60)"]}},
                   startup_timeout_s=1)
    try:
        assert mcp.warnings == ["MCP server 'mute' failed to start: did not start within 1 s; its tools are not available"]
        assert mcp.tools() == [] and time.monotonic() - started < 10
    finally:
        mcp.close()


def test_streamable_http_server_with_headers(tmp_path, workspace, http_server):
    mcp = provider(tmp_path, {"web": {"type": "http", "url": http_server, "headers": {"X-Test": "1"}}})
    try:
        assert mcp.status["web"].state == "ok", mcp.warnings
        assert run(mcp, "mcp__web__add", workspace, a=20, b=22) == (False, "42")
        assert run(mcp, "mcp__web__picture", workspace)[1].endswith(f"[image: image/png, {len(PNG)} bytes]")
    finally:
        mcp.close()


def test_close_stops_the_stdio_server_process(tmp_path, workspace):
    mcp = provider(tmp_path, {"t": stdio_entry()})
    pid = int(run(mcp, "mcp__t__echo", workspace, text="x")[1].split("pid ")[1].rstrip(")"))
    mcp.close()
    assert_gone(pid)
