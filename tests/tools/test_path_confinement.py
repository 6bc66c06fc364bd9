"""Every path a tool touches is confined (each component resolved), and no tool writes under .git/ or
dsv4-code's own state, whichever tool, spelling or symlink is used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import TEMP_SUFFIX, Workspace


def call(root: Path, name: str, **arguments):
    toolbox = Toolbox(Workspace(root))
    tool, args = toolbox.prepare(name, json.dumps(arguments))
    return toolbox.execute(tool, args)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


GIT_SPELLINGS = [".git/config", "./.git/config", ".GIT/config", ".Git/hooks/pre-commit", "calc/../.git/config",
                 ".git/hooks/post-index-change", "gitlink/config", "gitlink/../.git/info/exclude", "sub/.git/config",
                 ".git./config", "git~1/config", "calc/.git"]


@pytest.fixture
def repo(calc_repo: Path) -> Path:
    os.symlink(".git", calc_repo / "gitlink")
    os.symlink(".git/config", calc_repo / "configlink")
    return calc_repo


def _writes(path: str) -> list[tuple[str, dict]]:
    add = f"*** Begin Patch\n*** Add File: {path}\n+[core]\n+\tfsmonitor = touch /tmp/pwned\n*** End Patch"
    move = f"*** Begin Patch\n*** Update File: calc/__init__.py\n*** Move to: {path}\n*** End Patch"
    return [("write_file", {"path": path, "content": "[core]\n\tfsmonitor = touch /tmp/pwned\n"}),
            ("edit_file", {"path": path, "old_string": "[core]", "new_string": "[core]\n\tfsmonitor = x"}),
            ("multi_edit", {"path": path, "edits": [{"old_string": "[core]", "new_string": "[x]"}]}),
            ("apply_patch", {"patch": add}), ("apply_patch", {"patch": move}),
            ("apply_patch", {"patch": f"*** Begin Patch\n*** Delete File: {path}\n*** End Patch"})]


@pytest.mark.parametrize("path", [*GIT_SPELLINGS, "configlink"])
def test_no_tool_writes_under_git(repo, path):
    (repo / "sub" / ".git").mkdir(parents=True)
    (repo / "sub" / ".git" / "config").write_text("[core]\n")
    before = snapshot(repo / ".git"), snapshot(repo / "sub")
    for name, arguments in _writes(path):
        result = call(repo, name, **arguments)
        assert result.is_error, (name, path, result.text)
    assert (snapshot(repo / ".git"), snapshot(repo / "sub")) == before
    assert (repo / "calc" / "__init__.py").exists()  # a refused move leaves its source alone


def test_no_tool_writes_dsv4_state(repo, monkeypatch):
    (repo / ".dsv4").mkdir()
    (repo / ".dsv4" / "config.toml").write_text('permission_mode = "ask"\n')
    state = repo / "state-home"
    monkeypatch.setenv("DSV4_HOME", str(state))
    (state / "checkpoints").mkdir(parents=True)
    for path in (".dsv4/config.toml", ".DSV4/instructions.md", "state-home/checkpoints/x", "state-home/config.toml"):
        for name, arguments in _writes(path):
            assert call(repo, name, **arguments).is_error, (name, path)
    assert (repo / ".dsv4" / "config.toml").read_text() == 'permission_mode = "ask"\n'
    assert sorted(p.name for p in state.rglob("*")) == ["checkpoints"]


@pytest.mark.parametrize("path,reason", [
    ("a\0b", "NUL byte"), ("x" * 300, "bytes long"), ("d/" + "y" * 256 + "/f", "bytes long"),
    ("/" + "z/" * 2100, "characters long"), ("../../etc/passwd", "outside the repository"),
    ("/etc/passwd", "outside the repository"), ("calc/../../x", "outside the repository"),
])
def test_unusable_paths_get_a_clear_error(repo, path, reason):
    for name, arguments in [("read_file", {"path": path}), ("list_files", {"path": path}),
                            ("search", {"pattern": "x", "path": path}), *_writes(path)]:
        result = call(repo, name, **arguments)
        assert result.is_error and reason in result.text, (name, result.text)


def test_lone_surrogates_are_refused_before_any_tool_runs(repo):
    toolbox = Toolbox(Workspace(repo))
    for name, raw in [("write_file", '{"path": "a\\ud800.txt", "content": "x"}'),
                      ("write_file", '{"path": "a.txt", "content": "bad \\udc80 text"}'),
                      ("bash", '{"command": "echo \\ud83d"}'), ("run_tests", '{"args": "\\udfff"}')]:
        with pytest.raises(Exception, match="lone surrogate"):
            toolbox.prepare(name, raw)
    assert not (repo / "a.txt").exists()


def test_search_and_list_files_never_follow_links_out_of_the_repo(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP-SECRET\n")
    os.symlink(outside / "secret.txt", repo / "leak.txt")
    os.symlink(outside, repo / "leakdir")
    from tests.conftest import git
    git(repo, "add", "leak.txt", "leakdir")  # committed links, as a pull request would bring them
    git(repo, "commit", "-qm", "links")
    result = call(repo, "search", pattern="TOP-SECRET")
    assert "leak.txt" not in result.text and result.data["matches"] == 0
    assert "outside the repository" in call(repo, "search", pattern="TOP", path="leakdir").text
    assert "outside the repository" in call(repo, "search", pattern="TOP", path="leak.txt").text
    listing = call(repo, "list_files").text
    assert "leak.txt" not in listing and "leakdir" not in listing and "calc/__init__.py" in listing
    assert "outside the repository" in call(repo, "list_files", path="leakdir").text


def test_a_file_where_a_folder_must_be(repo):
    (repo / "a.txt").write_text("file\n")
    result = call(repo, "write_file", path="a.txt/x", content="y")
    assert result.is_error and "a.txt is a file, not a folder" in result.text
    result = call(repo, "apply_patch", patch="*** Begin Patch\n*** Update File: calc\n-x\n+y\n*** End Patch")
    assert result.is_error and "is a folder" in result.text
    result = call(repo, "apply_patch", patch="*** Begin Patch\n*** Delete File: calc\n*** End Patch")
    assert result.is_error and "is a folder" in result.text
    assert (repo / "calc" / "__init__.py").exists()


def test_our_temp_leftovers_are_removed_when_a_workspace_opens(repo):
    dead = repo / "calc" / f".__init__.py.999999999.abcd1234{TEMP_SUFFIX}"
    alive = repo / f".notes.txt.{os.getppid()}.zz_y9876{TEMP_SUFFIX}"
    user_file = repo / f"mine{TEMP_SUFFIX}"
    in_git = repo / ".git" / f".config.999999999.abcd1234{TEMP_SUFFIX}"
    for path in (dead, alive, user_file, in_git):
        path.write_text("x")
    Workspace(repo)
    assert not dead.exists()
    assert alive.exists() and user_file.exists() and in_git.exists()
