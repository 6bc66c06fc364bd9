"""The headless contract of issue 12 through the real CLI in a subprocess: one JSON report whatever happens,
exit codes, only the run's own changes in the report, the init event, trust, redaction, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

from dsv4.agent.report import HeadlessReport

from ...conftest import FIX_SCRIPT, git, run_cli

SECRET = "sk-test-0123456789abcdef"


def test_an_unusable_patch_out_fails_before_the_run_with_one_json_report(calc_repo, write_script, tmp_path):
    proc = run_cli(["run", "--headless", "fix it", "--backend", "scripted", "--script", str(write_script(FIX_SCRIPT)),
                    "--output-format", "json", "--patch-out", str(tmp_path / "missing" / "x.patch")], calc_repo)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    report = HeadlessReport.model_validate_json(proc.stdout)
    assert report.status == "error" and report.error_kind == "usage" and "does not exist" in report.error
    assert git(calc_repo, "status", "--porcelain") == ""  # nothing ran: calc is unchanged


def test_a_bad_config_file_is_one_json_report_and_exit_2(calc_repo, write_script):
    (calc_repo / ".dsv4").mkdir()
    (calc_repo / ".dsv4" / "config.toml").write_text("max_steps = [\n")
    proc = run_cli(["run", "--headless", "x", "--backend", "scripted", "--script", str(write_script(FIX_SCRIPT)),
                    "--output-format", "json"], calc_repo)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    report = HeadlessReport.model_validate_json(proc.stdout)
    assert report.status == "error" and "config.toml" in report.error


def test_the_report_holds_only_what_the_run_changed(calc_repo, write_script):
    (calc_repo / "notes.txt").write_text("mine, untracked, before the run\n")
    (calc_repo / "README.md").write_text("edited by the user before the run\n")
    (calc_repo / ".stale.123.abcdefgh.dsv4tmp").write_text("a leftover")
    report_file = calc_repo / "report.json"
    with report_file.open("w") as out:  # CI redirecting the report into the repository
        proc = subprocess.run([sys.executable, "-m", "dsv4.agent.cli", "run", "--headless", "fix it", "--backend",
                               "scripted", "--script", str(write_script(FIX_SCRIPT)), "--output-format", "json",
                               "--patch-out", str(calc_repo / "fix.patch")], cwd=calc_repo, stdout=out,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    report = HeadlessReport.model_validate_json(report_file.read_text())
    assert report.files_changed == ["calc/__init__.py"]
    assert "notes.txt" not in report.patch and "README.md" not in report.patch and "dsv4tmp" not in report.patch
    assert report.schema_version == 2 and report.turns == 1 and report.duration_s > 0 and report.error_kind is None
    assert report.tests.outcome == "passed"


def test_stream_json_starts_with_an_init_event(calc_repo, write_script):
    proc = run_cli(["run", "--headless", "fix it", "--backend", "scripted", "--script", str(write_script(FIX_SCRIPT)),
                    "--output-format", "stream-json"], calc_repo)
    first = json.loads(proc.stdout.splitlines()[0])
    head = git(calc_repo, "rev-parse", "HEAD").strip()
    assert first["type"] == "init" and first["base_commit"] == head and "run_tests" in first["tools"]
    assert first["permission_mode"] == "headless" and first["model"] == "scripted"


def test_a_non_utf8_task_on_stdin_runs(calc_repo, write_script):
    proc = subprocess.run([sys.executable, "-m", "dsv4.agent.cli", "run", "--headless", "-", "--backend", "scripted",
                           "--script", str(write_script(FIX_SCRIPT)), "--output-format", "json"], cwd=calc_repo,
                          input=b"fix \xff\xfe it", capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert HeadlessReport.model_validate_json(proc.stdout).status == "done"


def test_secrets_in_the_environment_never_reach_events_or_the_log(calc_repo, write_script, dsv4_home):
    proc = run_cli(["run", "--headless", f"the key is {SECRET}, fix it", "--backend", "scripted", "--script",
                    str(write_script(FIX_SCRIPT)), "--output-format", "stream-json"], calc_repo,
                   env={"DEEPSEEK_API_KEY": SECRET})
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout and "[redacted]" in proc.stdout
    assert all(SECRET.encode() not in path.read_bytes() for path in dsv4_home.rglob("*") if path.is_file())


def test_untrusted_repo_config_is_reported_and_trust_applies_it(calc_repo, write_script):
    (calc_repo / ".dsv4").mkdir()
    (calc_repo / ".dsv4" / "config.toml").write_text('test_command = "python -c \\"print(1)\\""\nmax_steps = 7\n')
    args = ["run", "--headless", "fix it", "--backend", "scripted", "--script", str(write_script(FIX_SCRIPT)),
            "--output-format", "json"]
    untrusted = run_cli(args, calc_repo)
    assert "not trusted" in untrusted.stderr and "test_command" in untrusted.stderr
    assert "pytest" in HeadlessReport.model_validate_json(untrusted.stdout).tests.command
    once = run_cli([*args, "--trust-repo"], calc_repo)
    assert "print(1)" in HeadlessReport.model_validate_json(once.stdout).tests.command
    assert run_cli(["trust"], calc_repo).returncode == 0
    trusted = run_cli(args, calc_repo)
    assert "not trusted" not in trusted.stderr and "print(1)" in HeadlessReport.model_validate_json(trusted.stdout).tests.command
    assert "no longer trusted" in run_cli(["trust", "--revoke"], calc_repo).stdout


def test_the_tui_with_a_bad_model_exits_with_one_line(calc_repo):
    proc = run_cli(["--model", str(calc_repo / "nope.gguf")], calc_repo)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.startswith("dsv4-code: error:")
