"""Checkpoints wired into real runs: `dsv4-code undo` and `/undo` restore what a turn changed, bash changes included."""

from __future__ import annotations

from ...conftest import CALC_SOURCE, git, run_cli


def test_cli_undo_restores_edits_and_bash_changes_without_touching_git_state(calc_repo, write_script):
    script = [{"content": "", "tool_calls": [{"name": "edit_file", "arguments": {
                  "path": "calc/__init__.py", "old_string": "a - b", "new_string": "a + b"}}]},
              {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "echo made > made.txt && rm tests/test_calc.py"}}]},
              {"content": "done"}]
    run = run_cli(["run", "--headless", "x", "--allow-shell", "--backend", "scripted", "--script", str(write_script(script))],
                  calc_repo)
    assert (calc_repo / "made.txt").exists() and not (calc_repo / "tests" / "test_calc.py").exists(), run.stdout
    head_before = git(calc_repo, "rev-parse", "HEAD")
    listing = run_cli(["undo", "--list"], calc_repo)
    assert listing.returncode == 0 and "1 checkpoint in session" in listing.stdout and "before turn 1" in listing.stdout
    undo = run_cli(["undo"], calc_repo)
    assert undo.returncode == 0, undo.stderr
    assert "calc/__init__.py" in undo.stdout and "made.txt" in undo.stdout
    assert (calc_repo / "calc" / "__init__.py").read_text() == CALC_SOURCE
    assert not (calc_repo / "made.txt").exists() and (calc_repo / "tests" / "test_calc.py").exists()
    assert git(calc_repo, "status", "--porcelain") == "" and git(calc_repo, "rev-parse", "HEAD") == head_before
    again = run_cli(["undo"], calc_repo)
    assert again.returncode == 1 and "nothing to undo" in again.stdout


def test_cli_undo_without_sessions_is_a_clear_error(calc_repo):
    proc = run_cli(["undo"], calc_repo)
    assert proc.returncode == 2 and "no earlier session" in proc.stderr
