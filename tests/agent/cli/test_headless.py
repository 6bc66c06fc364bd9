"""Headless end to end: the real CLI in a subprocess, a real git repo, real pytest, scripted or loopback-HTTP models."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from pydantic import TypeAdapter

from dsv4.agent.report import HeadlessReport, StreamEvent

from ...conftest import FIX_SCRIPT, git, run_cli


def test_scripted_fix_gives_patch_report_and_exit_0(calc_repo, write_script, tmp_path):
    patch_file = tmp_path / "out.patch"
    proc = run_cli(["run", "--headless", "fix the failing test", "--backend", "scripted", "--script",
                    str(write_script(FIX_SCRIPT)), "--output-format", "json", "--patch-out", str(patch_file)], calc_repo)
    assert proc.returncode == 0, proc.stderr
    report = HeadlessReport.model_validate_json(proc.stdout)
    assert report.status == "done" and report.files_changed == ["calc/__init__.py"]
    assert report.tests.ran and report.tests.ok and report.tests.passed == 2 and report.tests.failed == 0
    assert "+    return a + b" in report.patch and patch_file.read_text() == report.patch
    assert report.usage.prompt_tokens > 0 and report.session_id and report.denied_actions == []
    assert "subtracted" in report.summary
    # The patch applies to a clean checkout and the user's branch and index were not touched.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(calc_repo), str(clone))
    git(clone, "apply", "--check", str(patch_file))
    assert git(calc_repo, "diff", "--cached") == "" and git(calc_repo, "log", "--oneline").count("\n") == 1


def test_stream_json_emits_one_event_per_line_ending_with_the_result(calc_repo, write_script):
    proc = run_cli(["run", "--headless", "fix it", "--backend", "scripted", "--script", str(write_script(FIX_SCRIPT)),
                    "--output-format", "stream-json"], calc_repo)
    assert proc.returncode == 0, proc.stderr
    adapter = TypeAdapter(StreamEvent)
    events = [adapter.validate_json(line) for line in proc.stdout.splitlines()]
    kinds = [e.type for e in events]
    assert kinds[0] == "init" and kinds[1] == "turn_started" and kinds[-1] == "result"
    assert {"tool_requested", "tool_finished", "file_changed", "tests_ran", "usage_update"} <= set(kinds)
    assert events[-1].report.status == "done"


def test_text_output_and_task_from_stdin(calc_repo, write_script):
    proc = run_cli(["run", "--headless", "-", "--backend", "scripted", "--script", str(write_script(FIX_SCRIPT))],
                   calc_repo, stdin="fix the failing test\n")
    assert proc.returncode == 0, proc.stderr
    assert "status: done (exit 0)" in proc.stdout and "tests: passed: 2 passed, 0 failed" in proc.stdout


def test_denied_shell_command_exits_nonzero_and_is_reported(calc_repo, write_script):
    script = [{"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "touch pwned.txt"}}]},
              {"content": "I could not run the command."}]
    proc = run_cli(["run", "--headless", "make a file", "--backend", "scripted", "--script", str(write_script(script)),
                    "--output-format", "json"], calc_repo)
    assert proc.returncode == 1
    report = HeadlessReport.model_validate_json(proc.stdout)
    assert report.denied_actions[0].tool == "bash" and "--allow-shell" in report.denied_actions[0].reason
    assert not (calc_repo / "pwned.txt").exists()


def test_allow_shell_permits_it(calc_repo, write_script):
    script = [{"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "echo hi > note.txt"}}]},
              {"content": "", "tool_calls": [{"name": "edit_file", "arguments": {
                  "path": "calc/__init__.py", "old_string": "a - b", "new_string": "a + b"}}]},
              {"content": "done"}]
    proc = run_cli(["run", "--headless", "x", "--allow-shell", "--backend", "scripted", "--script",
                    str(write_script(script)), "--output-format", "json"], calc_repo)
    assert proc.returncode == 0, proc.stdout
    assert sorted(HeadlessReport.model_validate_json(proc.stdout).files_changed) == ["calc/__init__.py", "note.txt"]


def test_tests_still_failing_exit_1(calc_repo, write_script):
    proc = run_cli(["run", "--headless", "x", "--backend", "scripted", "--script",
                    str(write_script([{"content": "I think it is fine."}])), "--output-format", "json"], calc_repo)
    assert proc.returncode == 1
    report = HeadlessReport.model_validate_json(proc.stdout)
    assert report.status == "not_done" and report.tests.failed == 1 and report.patch == ""


def test_max_steps_budget_exit_1_says_which_budget(calc_repo, write_script):
    loop = [{"content": "", "tool_calls": [{"name": "list_files", "arguments": {"path": "calc"}}]}] * 5
    proc = run_cli(["run", "--headless", "x", "--max-steps", "2", "--backend", "scripted", "--script",
                    str(write_script(loop)), "--output-format", "json"], calc_repo)
    assert proc.returncode == 1
    report = HeadlessReport.model_validate_json(proc.stdout)
    assert report.status == "budget_exhausted" and report.budget_exhausted == "max_steps" and report.steps == 2


def test_max_tokens_budget(calc_repo, write_script):
    loop = [{"content": "", "tool_calls": [{"name": "read_file", "arguments": {"path": "tests/test_calc.py"}}]},
            {"content": "", "tool_calls": [{"name": "list_files", "arguments": {}}]}] * 3
    proc = run_cli(["run", "--headless", "x", "--max-tokens", "50", "--backend", "scripted", "--script",
                    str(write_script(loop)), "--output-format", "json"], calc_repo)
    assert proc.returncode == 1
    assert HeadlessReport.model_validate_json(proc.stdout).budget_exhausted == "max_tokens"


def test_backend_failure_exit_3(calc_repo):
    proc = run_cli(["run", "--headless", "x", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                    "--output-format", "json"], calc_repo, env={"DSV4_MAX_RETRIES": "0"})
    assert proc.returncode == 3
    report = HeadlessReport.model_validate_json(proc.stdout)
    assert report.status == "backend_error" and "cannot connect" in report.error


def test_usage_errors_exit_2_with_one_line(calc_repo, tmp_path, write_script):
    cases = [
        (["run", "--headless", "x", "--bogus-flag"], calc_repo, "unrecognized arguments"),
        (["run", "--headless", "x", "--backend", "scripted"], calc_repo, "needs --script"),
        (["run", "--headless", "x", "--base-url", "http://127.0.0.1:9/v1"], calc_repo, "needs --model"),
        (["run", "--headless", "x", "--script", str(tmp_path / "missing.json")], calc_repo, "does not exist"),
        (["run", "--headless", "x", "--backend", "scripted", "--script", str(write_script({"not": "a list"}, "bad.json"))],
         calc_repo, "JSON list"),
        (["run", "--headless", "x", "--base-url", "http://h/v1", "--model", "m", "--api-key-env", "NOPE_UNSET"],
         calc_repo, "NOPE_UNSET"),
        (["run", "--headless", "x", "--backend", "scripted", "--script", "s.json"], tmp_path, "not inside a git repository"),
        (["run", "--headless", "  ", "--backend", "scripted", "--script", "s.json"], calc_repo, "task is empty"),
        (["--resume", "nosuchid", "--backend", "scripted", "--script", str(write_script(FIX_SCRIPT))], calc_repo, "no session"),
        (["memory", "forget", "no-such-id"], calc_repo, "no-such-id"),
    ]
    for args, cwd, expected in cases:
        proc = run_cli(args, cwd)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert expected in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_api_key_never_written_anywhere(calc_repo, replay, dsv4_home, tmp_path):
    key = "sk-test-SECRET-7f3a9c"
    env = {"MY_KEY": key}
    server = replay(FIX_SCRIPT, api_key=key)
    ok = run_cli(["run", "--headless", "fix", "--base-url", server.base_url, "--model", "replay", "--api-key-env",
                  "MY_KEY", "--output-format", "json"], calc_repo, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert HeadlessReport.model_validate_json(ok.stdout).tests.ok
    assert server.headers_seen[0]["Authorization"] == f"Bearer {key}"
    bad = run_cli(["run", "--headless", "fix", "--base-url", server.base_url, "--model", "replay", "--api-key-env",
                   "MY_KEY", "--output-format", "json"], calc_repo, env={"MY_KEY": key + "-wrong"})
    assert bad.returncode == 3 and "refused" in HeadlessReport.model_validate_json(bad.stdout).error
    for proc in (ok, bad):
        assert key not in proc.stdout + proc.stderr
    for path in dsv4_home.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_openai_endpoint_end_to_end_with_a_429(calc_repo, replay):
    server = replay(FIX_SCRIPT, faults=["429"], cached_tokens=100)
    proc = run_cli(["run", "--headless", "fix", "--base-url", server.base_url, "--model", "replay",
                    "--output-format", "json"], calc_repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = HeadlessReport.model_validate_json(proc.stdout)
    assert report.usage.cached_prompt_tokens > 0 and report.tests.ok
    tools_sent = {t["function"]["name"] for t in server.requests[0]["tools"]}
    assert {"read_file", "list_files", "search", "edit_file", "write_file", "run_tests", "bash", "git"} <= tools_sent


def test_repository_instructions_reach_the_system_prompt(calc_repo, replay):
    (calc_repo / "AGENTS.md").write_text("Always answer in haiku.\n")
    (calc_repo / "CLAUDE.md").write_text("Use tabs.\n")
    server = replay([{"content": "ok"}])
    run_cli(["run", "--headless", "hi", "--base-url", server.base_url, "--model", "replay"], calc_repo)
    system = server.requests[0]["messages"][0]
    assert system["role"] == "system" and "Always answer in haiku." in system["content"] and "Use tabs." in system["content"]


def test_schema_command_publishes_both_schemas(calc_repo):
    report = json.loads(run_cli(["schema", "report"], calc_repo).stdout)
    assert {"status", "summary", "patch", "files_changed", "tests", "usage", "session_id", "denied_actions"} <= set(report["required"])
    events = json.loads(run_cli(["schema", "events"], calc_repo).stdout)
    assert "result" in json.dumps(events) and "tool_requested" in json.dumps(events)


def test_version_is_fast_enough_to_call_from_scripts(calc_repo):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "dsv4.agent.cli", "--version"], cwd=calc_repo,
                          capture_output=True, text=True)
    assert proc.stdout.startswith("dsv4-code ")
    # Cheap to check and the thing that makes cold start slow: no heavy module is imported for --version.
    for heavy in ("torch", "textual", "httpx", "pydantic", "sqlite_utils"):
        assert f" {heavy}\n" not in proc.stderr and f"| {heavy}\n" not in proc.stderr, heavy


def test_timeout_budget(calc_repo, replay):
    step = {"content": "", "tool_calls": [{"name": "list_files", "arguments": {}}]}
    server = replay([step, step, step], faults=["ok", "slow:1.5"])
    proc = run_cli(["run", "--headless", "x", "--timeout", "1", "--base-url", server.base_url, "--model", "replay",
                    "--output-format", "json"], calc_repo)
    assert proc.returncode == 1
    report = HeadlessReport.model_validate_json(proc.stdout)
    assert report.budget_exhausted == "timeout" and "timeout budget ran out" in report.summary


def test_continue_picks_the_latest_session(calc_repo, write_script):
    first = run_cli(["run", "--headless", "first task", "--backend", "scripted", "--script",
                     str(write_script([{"content": "one"}])), "--output-format", "json"], calc_repo)
    second = run_cli(["run", "--headless", "second task", "--continue", "--backend", "scripted", "--script",
                      str(write_script([{"content": "two"}], "two.json")), "--output-format", "json"], calc_repo)
    assert json.loads(first.stdout)["session_id"] == json.loads(second.stdout)["session_id"]
    listing = run_cli(["sessions"], calc_repo).stdout
    assert "2 turns" in listing and "first task" in listing


def test_bad_local_model_file_is_a_one_line_error(calc_repo, tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf at all")
    proc = run_cli(["run", "--headless", "x", "--model", str(bad)], calc_repo)
    assert proc.returncode == 2 and "not a GGUF file" in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_mid_command_still_ends_with_the_report(calc_repo, write_script):
    """A CI job's time limit sends SIGTERM: the running command is stopped, and the run prints its report (exit 1,
    the tests not run) instead of vanishing."""
    script = [{"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "sleep 60"}}]},
              {"content": "never reached"}]
    proc = subprocess.Popen([sys.executable, "-m", "dsv4.agent.cli", "run", "--headless", "wait", "--allow-shell",
                             "--backend", "scripted", "--script", str(write_script(script)),
                             "--output-format", "stream-json"],
                            cwd=calc_repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if json.loads(line)["type"] == "tool_decision":
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=30)
    events = [json.loads(line) for line in lines + rest.splitlines()]
    assert proc.returncode == 1, err
    report = events[-1]["report"]
    assert events[-1]["type"] == "result" and report["error_kind"] == "cancelled"
    assert "stopped by SIGTERM" in report["error"] and not report["tests"]["ran"]
    assert "Traceback" not in err


def test_text_mode_tells_each_step_on_stderr_without_secrets(calc_repo, write_script):
    script = [{"content": "", "tool_calls": [{"name": "read_file", "arguments": {"path": "calc/__init__.py"}}]},
              {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "curl -H 'x: hunter2-secret' x"}}]},
              {"content": "", "tool_calls": [{"name": "edit_file", "arguments": {
                  "path": "calc/__init__.py", "old_string": "a - b", "new_string": "a + b"}}]},
              {"content": "done"}]
    proc = run_cli(["run", "--headless", "fix", "--backend", "scripted", "--script", str(write_script(script))],
                   calc_repo, env={"DEPLOY_TOKEN": "hunter2-secret"})
    assert proc.returncode == 1, proc.stderr  # the bash call was denied
    lines = [line for line in proc.stderr.splitlines() if line.startswith("dsv4-code: ")]
    assert lines[0] == "dsv4-code: step 1" and "dsv4-code:   ok     read_file calc/__init__.py -> " in lines[1]
    assert any(line.startswith("dsv4-code:   denied bash curl") and "[redacted]" in line for line in lines)
    assert any("edit_file calc/__init__.py -> edited" in line for line in lines)
    assert "hunter2" not in proc.stderr + proc.stdout
    assert proc.stdout.startswith("status: not_done (exit 1)")  # the report alone on stdout


def test_text_mode_progress_shows_a_models_terminal_escapes_as_question_marks(calc_repo, write_script):
    script = [{"content": "", "tool_calls": [{"name": "read_file", "arguments": {"path": "calc/\x1b]0;pwned\x07x.py"}}]},
              {"content": "done"}]
    proc = run_cli(["run", "--headless", "x", "--backend", "scripted", "--script", str(write_script(script))], calc_repo)
    progress = [line for line in proc.stderr.splitlines() if line.startswith("dsv4-code:   ")]
    assert progress and "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    assert "calc/?]0;pwned?x.py" in progress[0]
