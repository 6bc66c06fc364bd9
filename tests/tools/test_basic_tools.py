from __future__ import annotations

import os

import pytest

from dsv4.tools.run_tests import detect_test_command, parse_counts
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace


def call(root, name: str, **arguments):
    toolbox = Toolbox(Workspace(root))
    import json
    tool, args = toolbox.prepare(name, json.dumps(arguments))
    return toolbox.execute(tool, args)


def test_path_escapes_are_refused(calc_repo, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret")
    for path in ["../secret.txt", str(outside), "calc/../../secret.txt"]:
        result = call(calc_repo, "read_file", path=path)
        assert result.is_error and "outside the repository root" in result.text
    assert call(calc_repo, "write_file", path="../evil.txt", content="x").is_error
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_escapes_are_refused(calc_repo, tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "data.txt").write_text("outside data")
    os.symlink(tmp_path / "outside", calc_repo / "link")
    os.symlink(tmp_path / "outside" / "data.txt", calc_repo / "filelink")
    assert "outside the repository root" in call(calc_repo, "read_file", path="link/data.txt").text
    assert "outside the repository root" in call(calc_repo, "read_file", path="filelink").text
    result = call(calc_repo, "write_file", path="link/new.txt", content="x")
    assert result.is_error and not (tmp_path / "outside" / "new.txt").exists()
    assert call(calc_repo, "edit_file", path="filelink", old_string="outside", new_string="x").is_error
    assert (tmp_path / "outside" / "data.txt").read_text() == "outside data"


def test_list_files_respects_gitignore(calc_repo):
    (calc_repo / "build").mkdir()
    (calc_repo / "build" / "junk.txt").write_text("x")
    (calc_repo / ".gitignore").write_text("build/\n__pycache__/\n")
    (calc_repo / "new_module.py").write_text("x = 1\n")
    listing = call(calc_repo, "list_files").text.splitlines()
    assert "new_module.py" in listing and "calc/__init__.py" in listing
    assert not any(line.startswith("build/") for line in listing)
    assert call(calc_repo, "list_files", glob="*.py").text.splitlines() == ["calc/__init__.py", "new_module.py", "tests/test_calc.py"]


def test_search_and_read_with_offsets(calc_repo):
    found = call(calc_repo, "search", pattern=r"def \w+\(a, b\)", glob="*.py").text.splitlines()
    assert found == ["calc/__init__.py:1: def add(a, b):", "calc/__init__.py:5: def mul(a, b):"]
    assert call(calc_repo, "search", pattern="(").is_error
    page = call(calc_repo, "read_file", path="calc/__init__.py", offset=5, limit=1).text
    assert page.startswith("5\tdef mul(a, b):") and "more lines; continue with offset=6" in page


def test_non_utf8_and_huge_files_are_refused_with_a_reason(calc_repo):
    (calc_repo / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (calc_repo / "huge.txt").write_bytes(b"a" * 3_000_000)
    assert "cannot read as UTF-8" in call(calc_repo, "read_file", path="latin1.txt").text
    assert "not read whole" in call(calc_repo, "read_file", path="huge.txt").text
    assert "cannot edit" in call(calc_repo, "edit_file", path="latin1.txt", old_string="caf", new_string="x").text
    assert (calc_repo / "latin1.txt").read_bytes() == "caf\xe9".encode("latin-1")


def test_exact_edit_outcomes(calc_repo):
    path = calc_repo / "calc" / "__init__.py"
    os.chmod(path, 0o640)
    assert "not found" in call(calc_repo, "edit_file", path="calc/__init__.py", old_string="nope", new_string="x").text
    assert "matches 2 places (lines 1, 5)" in call(calc_repo, "edit_file", path="calc/__init__.py",
                                                   old_string="(a, b):", new_string="(x, y):").text
    ok = call(calc_repo, "edit_file", path="calc/__init__.py", old_string="a - b", new_string="a + b")
    assert not ok.is_error and ok.files_changed == ["calc/__init__.py"]
    again = call(calc_repo, "edit_file", path="calc/__init__.py", old_string="a - b", new_string="a + b")
    assert not again.is_error and "already applied" in again.text
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".dsv4tmp")]


def test_bash_timeout_and_output_cap(calc_repo):
    slow = call(calc_repo, "bash", command="echo start; sleep 30", timeout_s=1)
    assert "killed after 1 s" in slow.text and "start" in slow.text
    loud = call(calc_repo, "bash", command="python3 -c \"print('x' * 100000)\"")
    assert len(loud.text) < 31_000 and "characters cut" in loud.text
    assert "printed nothing" in call(calc_repo, "bash", command="true").text


def test_git_tool_is_read_only(calc_repo):
    assert "initial" in call(calc_repo, "git", subcommand="log", args=["--oneline"]).text
    assert call(calc_repo, "git", subcommand="commit", args=["-m", "x"]).is_error
    assert call(calc_repo, "git", subcommand="diff", args=["--output=/tmp/x"]).is_error


def test_run_tests_detects_pytest_and_reports_counts(calc_repo):
    result = call(calc_repo, "run_tests")
    assert result.is_error and result.data["passed"] == 1 and result.data["failed"] == 1
    assert "test_add" in result.text
    assert call(calc_repo, "run_tests", args="-k mul").data == {**result.data, "passed": 1, "failed": 0, "ok": True,
                                                                 "exit_code": 0, "outcome": "passed",
                                                                 "command": result.data["command"] + " -k mul"}


@pytest.mark.parametrize("output,expected", [
    ("===== 3 passed, 1 failed in 0.2s =====", (3, 1)),
    ("== 5 passed in 1s ==", (5, 0)),
    ("Tests:       2 failed, 7 passed, 9 total", (7, 2)),
    ("test result: ok. 4 passed; 0 failed; 0 ignored", (4, 0)),
    ("--- FAIL: TestX (0.00s)\nFAIL\tpkg\t0.1s\nok  \tother\t0.2s", (1, 1)),
    ("nothing recognisable", (None, None)),
])
def test_parse_counts(output, expected):
    assert parse_counts(output) == expected


def test_detect_test_command_by_project_kind(tmp_path):
    (tmp_path / "package.json").write_text('{"scripts": {"test": "node --test"}}')
    assert detect_test_command(tmp_path) == "npm test --silent"
    (tmp_path / "package.json").unlink()
    (tmp_path / "go.mod").write_text("module x\n")
    assert detect_test_command(tmp_path) == "go test ./..."
    (tmp_path / "go.mod").unlink()
    assert detect_test_command(tmp_path) is None
