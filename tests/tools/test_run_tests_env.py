"""run_tests runs the repository's tests in the repository's environment, says which, checks its args as
test selectors, and tells "tests could not run" apart from failing tests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dsv4.tools.test_env import TestCommandError, detect_test_runner, parse_test_command
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace


def call(workspace: Workspace, name: str, **arguments):
    toolbox = Toolbox(workspace)
    tool, args = toolbox.prepare(name, json.dumps(arguments))
    return toolbox.execute(tool, args)


def fake_program(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def recording_python(path: Path, log: Path) -> Path:
    """An interpreter of the repository's own environment: it notes that it ran, then runs the tests."""
    return fake_program(path, f'echo "$0" >> {log}\nexec {sys.executable} "$@"')


@pytest.fixture
def bare_env(monkeypatch, tmp_path):
    """No active virtualenv and a PATH with nothing on it, as on a fresh CI machine."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


def test_the_repositorys_venv_runs_its_tests_and_the_result_says_so(calc_repo, bare_env, tmp_path):
    log = tmp_path / "ran.log"
    recording_python(calc_repo / ".venv" / "bin" / "python", log)
    recording_python(calc_repo / "venv" / "bin" / "python", log)
    result = call(Workspace(calc_repo), "run_tests")
    assert result.data["outcome"] == "failed" and result.data["failed"] == 1 and result.data["passed"] == 1
    assert result.data["environment"] == "the repository's .venv/" and "environment: the repository's .venv/" in result.text
    assert log.read_text().strip().endswith(".venv/bin/python")


def test_order_active_virtualenv_then_venv_then_project_tools_then_path(calc_repo, bare_env, tmp_path, monkeypatch):
    active = tmp_path / "active"
    recording_python(active / "bin" / "python", tmp_path / "log")
    recording_python(calc_repo / "venv" / "bin" / "python", tmp_path / "log")
    monkeypatch.setenv("VIRTUAL_ENV", str(active))
    assert detect_test_runner(calc_repo).environment == f"the active virtualenv {active}"
    monkeypatch.delenv("VIRTUAL_ENV")
    assert detect_test_runner(calc_repo).environment == "the repository's venv/"
    (calc_repo / "venv" / "bin" / "python").unlink()
    (calc_repo / "uv.lock").write_text("")
    assert detect_test_runner(calc_repo).environment == "no Python found"  # uv.lock, but no uv on PATH
    fake_program(bare_env / "python3", "exit 0")
    assert detect_test_runner(calc_repo).environment == f"python3 on PATH ({bare_env / 'python3'})"
    fake_program(bare_env / "uv", "exit 0")
    runner = detect_test_runner(calc_repo)
    assert runner.argv[:4] == ["uv", "run", "python", "-m"] and "uv project" in runner.environment


def test_missing_runner_and_collection_errors_could_not_run(calc_repo, bare_env):
    result = call(Workspace(calc_repo), "run_tests")
    assert result.data["outcome"] == "could_not_run" and result.text.startswith("tests could not run:")
    assert result.is_error and not result.data["ok"]
    fake_program(calc_repo / ".venv" / "bin" / "python", 'echo "$0: No module named pytest" >&2; exit 1')
    result = call(Workspace(calc_repo), "run_tests")
    assert result.data["outcome"] == "could_not_run" and "missing" in result.data["reason"]


def test_collection_error_and_no_tests_are_not_failures(calc_repo):
    workspace = Workspace(calc_repo)
    (calc_repo / "tests" / "test_broken.py").write_text("import no_such_dependency\n")
    result = call(workspace, "run_tests", args="tests/test_broken.py")
    assert result.data["outcome"] == "could_not_run" and "collection" in result.data["reason"]
    assert "no_such_dependency" in result.data["reason"]
    (calc_repo / "tests" / "test_broken.py").unlink()
    result = call(workspace, "run_tests", args="-k nothing_matches_this")
    assert result.data["outcome"] == "could_not_run" and result.data["reason"] == "no tests were collected"
    result = call(workspace, "run_tests", args="tests/test_calc.py::test_mul -x")
    assert result.data["outcome"] == "passed" and result.data["passed"] == 1


@pytest.mark.parametrize("args", ["-p no:cacheprovider", "-pmyplugin", "--rootdir=/", "-c /etc/passwd",
                                  "--basetemp=/tmp", "/etc/passwd", "../x", "tests/nope.py", "-o addopts=-x",
                                  "--junitxml=out.xml", "--pyargs os", "-k", "--tb=sh", "--maxfail=x",
                                  "tests/test_calc.py; rm -rf .", "'unclosed", "--deselect ../x"])
def test_selectors_outside_the_grammar_are_refused(calc_repo, args):
    result = call(Workspace(calc_repo), "run_tests", args=args)
    assert result.is_error and result.text.startswith("error: tests not run"), result.text
    assert "exit_code" not in result.data


def test_configured_command_is_an_argv_never_a_shell(calc_repo, tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(TestCommandError, match="not a plain command"):
        parse_test_command(f"pytest && touch {marker}")
    workspace = Workspace(calc_repo, test_command=f"{sys.executable} -m pytest -q; touch {marker}")
    assert "not a plain command" in call(workspace, "run_tests").text and not marker.exists()
    runner = parse_test_command(f"PYTHONDONTWRITEBYTECODE=1 {sys.executable} -m pytest -q")
    assert runner.env == {"PYTHONDONTWRITEBYTECODE": "1"} and runner.kind == "pytest"
    workspace = Workspace(calc_repo, test_command=runner.command)
    result = call(workspace, "run_tests", args="-k mul")
    assert result.data["outcome"] == "passed" and result.data["environment"] == "the configured test_command"
