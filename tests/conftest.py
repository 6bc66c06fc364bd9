from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dsv4.agent.backends.replay_server import ReplayServer
from dsv4.agent.backends.script import ScriptedTurn

GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "Test",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


@pytest.fixture(autouse=True)
def dsv4_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("DSV4_HOME", str(home))
    for name in ("DEEPSEEK_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):  # each picks a backend (resolve.py)
        monkeypatch.delenv(name, raising=False)
    for key in [k for k in os.environ if k.startswith("DSV4_") and k != "DSV4_HOME"]:
        monkeypatch.delenv(key)
    # Test repositories run their tests in the environment running these tests (tools/test_env.py).
    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    return home


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


CALC_SOURCE = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
CALC_TESTS = ("from calc import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
              "def test_mul():\n    assert mul(2, 3) == 6\n")


@pytest.fixture
def calc_repo(tmp_path: Path) -> Path:
    """A real git repo with a small Python package and one failing pytest test."""
    root = tmp_path / "calc-repo"
    (root / "calc").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "calc" / "__init__.py").write_text(CALC_SOURCE)
    (root / "tests" / "test_calc.py").write_text(CALC_TESTS)
    (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\npythonpath = ['.']\naddopts = '-p no:cacheprovider'\n")
    (root / ".gitignore").write_text("__pycache__/\n*.pyc\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    return root


FIX_SCRIPT: list[dict[str, Any]] = [
    {"content": "Let me look at the code.", "tool_calls": [{"name": "read_file", "arguments": {"path": "calc/__init__.py"}}]},
    {"content": "", "tool_calls": [{"name": "edit_file", "arguments": {
        "path": "calc/__init__.py", "old_string": "    return a - b", "new_string": "    return a + b"}}]},
    {"content": "", "tool_calls": [{"name": "run_tests", "arguments": {}}]},
    {"content": "Fixed add(): it subtracted instead of adding. All tests pass."},
]


@pytest.fixture
def write_script(tmp_path: Path) -> Callable[[list[dict[str, Any]]], Path]:
    def write(turns: list[dict[str, Any]], name: str = "script.json") -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(turns))
        return path
    return write


@pytest.fixture
def replay() -> Iterator[Callable[..., ReplayServer]]:
    servers: list[ReplayServer] = []

    def start(turns: list[dict[str, Any]], **kwargs: Any) -> ReplayServer:
        server = ReplayServer([ScriptedTurn.model_validate(t) for t in turns], **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command line in a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "dsv4.agent.cli", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, input=stdin if stdin is not None else "", timeout=timeout)
