"""Subprocesses of tools: no backend secret in their environment, no shell for run_tests, cancellation kills
the whole process group within about a second, and nothing is left running."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from dsv4.tools.process import run_command, safe_environment
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace


def call(workspace: Workspace, name: str, **arguments):
    toolbox = Toolbox(workspace)
    tool, args = toolbox.prepare(name, json.dumps(arguments))
    return toolbox.execute(tool, args)


@pytest.fixture
def secrets(monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deepseek-secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("MY_VLLM_KEY", "sk-configured-secret")
    monkeypatch.setenv("DSV4_API_KEY", "sk-dsv4-secret")
    monkeypatch.setenv("HARMLESS_SETTING", "visible")


def test_safe_environment_drops_backend_keys_and_dsv4_settings(secrets):
    env = safe_environment({"MY_VLLM_KEY"})
    assert not {"DEEPSEEK_API_KEY", "OPENAI_API_KEY", "MY_VLLM_KEY", "DSV4_API_KEY"} & set(env)
    assert env["HARMLESS_SETTING"] == "visible" and env["DSV4_HOME"] == os.environ["DSV4_HOME"]


def test_bash_and_run_tests_subprocesses_never_see_the_key(secrets, calc_repo):
    workspace = Workspace(calc_repo, secret_names=frozenset({"MY_VLLM_KEY"}))
    shown = call(workspace, "bash", command="env").text
    assert "sk-" not in shown and "HARMLESS_SETTING=visible" in shown
    # A failing test that prints the environment: its output lands in the tool result and the CI report.
    (calc_repo / "tests" / "test_env_dump.py").write_text(
        "import os\n\ndef test_dump():\n    print(dict(os.environ))\n    assert False\n")
    result = call(workspace, "run_tests", args="tests/test_env_dump.py -s")
    assert result.data["outcome"] == "failed" and "HARMLESS_SETTING" in result.text
    assert "sk-" not in result.text


def test_run_tests_args_never_reach_a_shell(calc_repo, tmp_path):
    marker = tmp_path / "pwned"
    workspace = Workspace(calc_repo)
    for args in [f"; touch {marker}", f"tests && touch {marker}", f"$(touch {marker})", f"`touch {marker}`",
                 f"| touch {marker}", f"-p no:x --rootdir={tmp_path}"]:
        result = call(workspace, "run_tests", args=args)
        assert result.is_error and "tests not run" in result.text, args
    assert not marker.exists()


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed child waits for its new parent to reap it; it runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _pids_in_group(pgid: int) -> list[int]:
    """Running members of the group, once a SIGKILL already sent has had a moment to land."""
    for _ in range(40):
        found = _group_members(pgid)
        if not found:
            break
        time.sleep(0.05)
    return found


def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid and _running(int(entry.name)):
                    found.append(int(entry.name))
            except ProcessLookupError:
                pass
    return found


def test_cancel_event_stops_a_running_bash_command_and_its_children(tmp_path):
    workspace = Workspace(tmp_path)
    pid_file = tmp_path / "pid"
    threading.Timer(0.5, workspace.cancel_event.set).start()
    started = time.monotonic()
    # A shell that starts a background child and then waits: both must go.
    result = call(workspace, "bash", command=f"sleep 30 & echo $$ > {pid_file}; sleep 30")
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"cancelling took {elapsed:.1f} s"
    assert result.data["cancelled"] and "cancelled" in result.text
    pgid = int(pid_file.read_text())
    assert _pids_in_group(pgid) == []


def test_deadline_stops_a_command(tmp_path):
    started = time.monotonic()
    outcome = run_command(["sleep", "30"], tmp_path, timeout_s=60, deadline=time.monotonic() + 0.5)
    assert outcome.timed_out and time.monotonic() - started < 5


def test_background_children_do_not_outlive_a_finished_command(tmp_path):
    pid_file = tmp_path / "pid"
    outcome = run_command(["/bin/sh", "-c", f"sleep 30 & echo $! > {pid_file}"], tmp_path, timeout_s=20)
    assert outcome.exit_code == 0 and not outcome.timed_out
    child = int(pid_file.read_text())
    for _ in range(40):  # the SIGKILL is sent before run_command returns; give it a moment to land
        if not _running(child):
            break
        time.sleep(0.05)
    assert not _running(child)


def test_output_of_a_runaway_command_is_bounded(tmp_path):
    outcome = run_command(["/bin/sh", "-c", "head -c 50000000 /dev/zero | tr '\\0' y"], tmp_path, timeout_s=60)
    assert outcome.exit_code == 0 and len(outcome.output) < 400_000 and "bytes of output cut" in outcome.output


def test_cancel_event_stops_run_tests(calc_repo):
    (calc_repo / "tests" / "test_slow.py").write_text("import time\n\n\ndef test_slow():\n    time.sleep(30)\n")
    workspace = Workspace(calc_repo)
    threading.Timer(1.0, workspace.cancel_event.set).start()
    started = time.monotonic()
    result = call(workspace, "run_tests", args="tests/test_slow.py")
    elapsed = time.monotonic() - started
    assert elapsed < 6, f"cancelling took {elapsed:.1f} s"
    assert result.data["outcome"] == "could_not_run" and result.data["reason"] == "cancelled"
    assert result.text.startswith("tests could not run: cancelled")
