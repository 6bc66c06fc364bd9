"""Which command runs a repository's tests, and in which environment: the repository's, never ours.

For a Python repository, in order: an active `$VIRTUAL_ENV`, the repository's `.venv/` or `venv/`,
a uv / poetry / hatch project (only when that tool is on PATH), then `python` and `pytest` on PATH.
Other ecosystems: `npm test`, `cargo test`, `go test ./...`. A configured `test_command` is split like
a shell would split it but never run by one: shell operators are refused, `NAME=value` prefixes
become environment variables.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

RunnerKind = Literal["pytest", "npm", "cargo", "go", "other"]
_OPERATOR_CHARS = frozenset("();<>|&")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class TestCommandError(ValueError):
    __test__ = False  # not a pytest test class


def shell_syntax(text: str) -> str | None:
    """The first shell operator or substitution in `text` (as a shell would see it), or None."""
    if "$(" in text or "`" in text:
        return "$(...)" if "$(" in text else "`...`"
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return next((t for t in lexer if t and set(t) <= _OPERATOR_CHARS), None)
    except ValueError:
        return None  # unbalanced quotes: reported by the split itself


@dataclass(frozen=True)
class TestRunner:
    __test__ = False  # not a pytest test class
    argv: list[str]
    environment: str  # said to the model and the user: which environment runs the tests
    kind: RunnerKind
    env: dict[str, str] = field(default_factory=dict)

    @property
    def command(self) -> str:
        assignments = [f"{k}={shlex.quote(v)}" for k, v in self.env.items()]
        return " ".join([*assignments, shlex.join(self.argv)])


def _is_python_repo(root: Path) -> bool:
    return any((root / name).exists() for name in ("pyproject.toml", "pytest.ini", "setup.cfg", "setup.py",
                                                      "tox.ini")) or (root / "tests").is_dir() \
        or any(root.glob("test_*.py"))


def _pyproject_text(root: Path) -> str:
    path = root / "pyproject.toml"
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def python_runner(root: Path, environ: dict[str, str] | None = None) -> TestRunner | None:
    """`python -m pytest` in the repository's environment, or None when no interpreter can be found."""
    environ = dict(os.environ) if environ is None else environ
    search_path = environ.get("PATH", os.defpath)
    pytest = ["-m", "pytest", "-q"]
    venv = environ.get("VIRTUAL_ENV")
    if venv and (Path(venv) / "bin" / "python").exists():
        return TestRunner([str(Path(venv) / "bin" / "python"), *pytest], f"the active virtualenv {venv}", "pytest")
    for name in (".venv", "venv"):
        interpreter = root / name / "bin" / "python"
        if interpreter.exists():
            return TestRunner([str(interpreter), *pytest], f"the repository's {name}/", "pytest")
    pyproject = _pyproject_text(root)
    projects = (("uv", (root / "uv.lock").exists() or "[tool.uv" in pyproject),
                ("poetry", (root / "poetry.lock").exists() or "[tool.poetry" in pyproject),
                ("hatch", (root / "hatch.toml").exists() or "[tool.hatch" in pyproject))
    for tool, is_project in projects:
        if is_project and shutil.which(tool, path=search_path):
            return TestRunner([tool, "run", "python", *pytest], f"the {tool} project's environment ({tool} run)",
                              "pytest")
    for name in ("python", "python3"):
        found = shutil.which(name, path=search_path)
        if found:
            return TestRunner([found, *pytest], f"{name} on PATH ({found})", "pytest")
    found = shutil.which("pytest", path=search_path)
    if found:
        return TestRunner([found, "-q"], f"pytest on PATH ({found})", "pytest")
    return None


def detect_test_runner(root: Path, environ: dict[str, str] | None = None) -> TestRunner | None:
    """The command a developer would type in this repo; None when there is no recognisable test setup."""
    if _is_python_repo(root):
        return python_runner(root, environ) or TestRunner(["python", "-m", "pytest", "-q"], "no Python found",
                                                          "pytest")
    package_json = root / "package.json"
    if package_json.is_file():
        try:
            scripts = json.loads(package_json.read_text(encoding="utf-8")).get("scripts", {})
        except (ValueError, AttributeError):
            scripts = {}
        if isinstance(scripts, dict) and "test" in scripts:
            return TestRunner(["npm", "test", "--silent"], "npm (the package's test script)", "npm")
    if (root / "Cargo.toml").exists():
        return TestRunner(["cargo", "test"], "cargo", "cargo")
    if (root / "go.mod").exists():
        return TestRunner(["go", "test", "./..."], "go", "go")
    return None


def detect_test_command(root: Path) -> str | None:
    runner = detect_test_runner(root)
    return runner.command if runner else None


def runner_kind(argv: list[str]) -> RunnerKind:
    names = [Path(a).name for a in argv[:3]]
    if any(n == "pytest" or n.startswith("py.test") for n in names) or argv[1:3] == ["-m", "pytest"] \
            or "pytest" in argv[:6]:
        return "pytest"
    if names and names[0] in ("npm", "yarn", "pnpm"):
        return "npm"
    if names and names[0] == "cargo":
        return "cargo"
    if names and names[0] == "go":
        return "go"
    return "other"


def parse_test_command(command: str, environment: str = "the configured test_command") -> TestRunner:
    """A configured command as an argv: split like a shell, never run by one."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise TestCommandError(f"test_command {command!r} cannot be split into arguments: {exc}") from None
    env: dict[str, str] = {}
    while words and _ASSIGNMENT.match(words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    bad = shell_syntax(command)
    if bad or not words:
        raise TestCommandError(f"test_command {command!r} is not a plain command ({bad or 'empty'}): "
                               "tests run without a shell; put shell logic in a script and name the script")
    return TestRunner(words, environment, runner_kind(words), env)
