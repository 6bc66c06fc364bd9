"""`dsv4-code run --headless` in a real subprocess, the scripted model calling a real MCP server's tools."""

from __future__ import annotations

import time

from pydantic import TypeAdapter

from dsv4.agent.report import HeadlessReport, StreamEvent

from ..conftest import run_cli
from .conftest import assert_gone, calls, stdio_entry

EVENTS = TypeAdapter(StreamEvent)


def headless(repo, write_script, script, *flags, env=None):
    proc = run_cli(["run", "--headless", "use the MCP tools", "--backend", "scripted", "--script",
                    str(write_script(script)), "--output-format", "stream-json", *flags], repo, env=env)
    events = [EVENTS.validate_json(line) for line in proc.stdout.splitlines()]
    return proc, events


def finished(events) -> list:
    return [e for e in events if e.type == "tool_finished"]


def test_a_trusted_servers_tools_are_called_and_their_results_fed_back(mcp_repo, write_script):
    repo = mcp_repo()
    script = calls(("mcp__t__echo", {"text": "hello"}), ("mcp__t__picture", {}), ("mcp__t__fail", {"reason": "r"}),
                   ("mcp__t__env", {"names": ["DEEPSEEK_API_KEY", "DSV4_SECRET_TOKEN"]}),
                   ("mcp__t__touch", {"name": "made-by-mcp.txt"}))
    proc, events = headless(repo, write_script, script, "--allow-shell",
                            env={"DEEPSEEK_API_KEY": "sk-must-not-leak", "DSV4_SECRET_TOKEN": "dsv4-must-not-leak"})
    assert proc.returncode == 0, proc.stderr
    init = events[0]
    assert init.type == "init" and {"mcp__t__echo", "mcp__t__picture", "mcp__t__crash"} <= set(init.tools)
    echo, picture, fail, env, touch = finished(events)
    assert echo.ok and echo.summary.startswith("echo: hello") and echo.data == {"server": "t", "tool": "echo"}
    assert picture.ok and picture.summary == "a red dot"
    assert not fail.ok and fail.summary.startswith("error:")
    assert env.ok
    report = events[-1].report
    assert report.status == "done" and report.files_changed == ["made-by-mcp.txt"]
    # What the model read: the tool messages of the session log hold the whole results.
    results = _tool_messages(repo, report.session_id)
    assert "[image: image/png," in results[1] and "DEEPSEEK_API_KEY=<unset>\nDSV4_SECRET_TOKEN=<unset>" == results[3]
    assert_gone(int(echo.summary.split("pid ")[1].rstrip(")")))  # stopped with the session


def test_headless_without_allow_shell_denies_mcp_calls(mcp_repo, write_script):
    repo = mcp_repo()
    proc = run_cli(["run", "--headless", "x", "--backend", "scripted", "--output-format", "json", "--script",
                    str(write_script(calls(("mcp__t__touch", {"name": "pwned.txt"}), final="could not")))], repo)
    assert proc.returncode == 1
    report = HeadlessReport.model_validate_json(proc.stdout)
    assert report.denied_actions[0].tool == "mcp__t__touch" and "--allow-shell" in report.denied_actions[0].reason
    assert not (repo / "pwned.txt").exists()


def test_an_untrusted_repositorys_servers_never_start(mcp_repo, write_script, tmp_path):
    marker = tmp_path / "server-ran"
    repo = mcp_repo({"evil": {"command": "/bin/sh", "args": ["-c", f"touch {marker}"]}}, trusted=False)
    proc, events = headless(repo, write_script, calls(("mcp__evil__x", {})), "--allow-shell")
    assert proc.returncode == 0, proc.stderr
    assert not any(name.startswith("mcp__") for name in events[0].tools)
    assert proc.stderr.count("were ignored") == 1 and "MCP servers evil" in proc.stderr
    assert not finished(events)[0].ok and "unknown tool 'mcp__evil__x'" in finished(events)[0].summary
    assert not marker.exists()


def test_a_crash_is_restarted_once_and_a_hang_ends_at_the_timeout(mcp_repo, write_script, dsv4_home):
    dsv4_home.mkdir(parents=True, exist_ok=True)
    (dsv4_home / "config.toml").write_text("mcp_tool_timeout_s = 2\n")
    repo = mcp_repo()
    script = calls(("mcp__t__hang", {"seconds": 60}), ("mcp__t__crash", {}), ("mcp__t__echo", {"text": "again"}),
                   ("mcp__t__crash", {}), ("mcp__t__echo", {"text": "no more"}))
    started = time.monotonic()
    proc, events = headless(repo, write_script, script, "--allow-shell")
    assert proc.returncode == 0, proc.stderr
    hang, crash, echo, crash_again, stopped = finished(events)
    assert not hang.ok and "did not answer hang within 2 s" in hang.summary
    assert not crash.ok and "started again for the next call" in crash.summary
    assert echo.ok and echo.summary.startswith("echo: again")
    assert not crash_again.ok and "already restarted once" in crash_again.summary
    assert not stopped.ok and "is stopped" in stopped.summary
    assert time.monotonic() - started < 60  # the 60 s hang did not hold the run


def test_a_server_that_fails_to_start_is_a_warning_and_the_run_goes_on(mcp_repo, write_script):
    repo = mcp_repo({"t": stdio_entry(), "broken": stdio_entry("--crash-on-start")})
    proc, events = headless(repo, write_script, calls(("mcp__t__add", {"a": 1, "b": 2})), "--allow-shell")
    assert proc.returncode == 0, proc.stderr
    assert "warning: MCP server 'broken' failed to start" in proc.stderr and "refuses to start" in proc.stderr
    assert any(e.type == "agent_error" and "'broken' failed to start" in e.message for e in events)
    assert finished(events)[0].ok and finished(events)[0].summary == "3"


def test_an_http_server_from_user_config(mcp_repo, write_script, dsv4_home, http_server):
    dsv4_home.mkdir(parents=True, exist_ok=True)
    (dsv4_home / "config.toml").write_text(f'[mcp_servers.web]\ntype = "http"\nurl = "{http_server}"\n'
                                           '[mcp_servers.web.headers]\nX-Client = "dsv4-code"\n')
    repo = mcp_repo({})
    proc, events = headless(repo, write_script, calls(("mcp__web__add", {"a": 40, "b": 2})), "--allow-shell")
    assert proc.returncode == 0, proc.stderr
    assert finished(events)[0].ok and finished(events)[0].summary == "42"


def _tool_messages(repo, session_id: str) -> list[str]:
    from dsv4.agent.sessions import SessionStore

    return [m.content for m in SessionStore.open_default().messages(session_id) if m.role == "tool"]
