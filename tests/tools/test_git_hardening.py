"""A repository's .git/config can name programs (fsmonitor, hooks, external diff, textconv, pager): none of
them ever runs through dsv4-code's git calls, and the git tool takes only an allow-list of read-only usage."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest

from dsv4.agent.gitdiff import diff_against_head, tracked_files, work_tree_state
from dsv4.agent.repo import find_repo
from dsv4.tools.checkpoints import CheckpointStore
from dsv4.tools.listing import repo_files
from dsv4.tools.repo_map.recency import change_times
from dsv4.tools.repo_scan import scan_repo
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace
from tests.conftest import git, run_cli


def call(root: Path, name: str, **arguments):
    toolbox = Toolbox(Workspace(root))
    tool, args = toolbox.prepare(name, json.dumps(arguments))
    return toolbox.execute(tool, args)


@pytest.fixture
def booby_trapped(calc_repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """calc_repo whose .git/config runs a program for every hook, fsmonitor, diff driver and pager."""
    marks = tmp_path / "marks"
    marks.mkdir()
    trap = tmp_path / "trap.sh"
    trap.write_text(f"#!/bin/sh\ntouch {marks}/$1\ncat\n")
    trap.chmod(0o755)
    hooks = calc_repo / ".git" / "hooks"
    for hook in ("post-index-change", "pre-commit", "post-checkout", "reference-transaction", "pre-auto-gc"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {marks}/hook-{hook}\n")
        (hooks / hook).chmod(0o755)
    for key, value in (("core.fsmonitor", f"{trap} fsmonitor"), ("diff.external", f"{trap} external"),
                       ("diff.evil.textconv", f"{trap} textconv"), ("diff.evil.command", f"{trap} command"),
                       ("core.pager", f"{trap} pager"), ("pager.diff", f"{trap} pagerdiff"),
                       ("gpg.program", f"{trap} gpg"), ("log.showSignature", "true")):
        git(calc_repo, "config", key, value)
    (calc_repo / ".gitattributes").write_text("* diff=evil\n")
    (calc_repo / "calc" / "__init__.py").write_text("def add(a, b):\n    return a + b\n")
    return calc_repo, marks


def test_no_repository_configured_program_ever_runs(booby_trapped):
    root, marks = booby_trapped
    for subcommand, args in (("status", []), ("diff", []), ("diff", ["HEAD"]), ("log", ["-p", "-n", "1"]),
                             ("show", ["HEAD"]), ("show", ["HEAD:calc/__init__.py"])):
        result = call(root, "git", subcommand=subcommand, args=args)
        assert not result.is_error, (subcommand, result.text)
    assert "return a + b" in call(root, "git", subcommand="diff").text  # a real diff, not the textconv output
    patch, files = diff_against_head(root)
    assert "return a + b" in patch and "calc/__init__.py" in files
    scan_repo(root)
    repo_files(root, root)
    change_times(root, ["calc/__init__.py"], {})
    find_repo(root)
    store = CheckpointStore(root)
    store.restore(store.capture("s", 1))
    assert work_tree_state(root) == ("main", True) and "calc/__init__.py" in tracked_files(root)  # the TUI's facts
    assert sorted(p.name for p in marks.iterdir()) == []


def test_the_traps_are_real(booby_trapped):
    """Plain git in the same repository runs them: the test above would see it if ours did."""
    root, marks = booby_trapped
    subprocess.run(["git", "status"], cwd=root, capture_output=True)
    subprocess.run(["git", "diff"], cwd=root, capture_output=True)
    subprocess.run(["git", "diff", "--no-ext-diff"], cwd=root, capture_output=True)
    assert {"fsmonitor", "command", "textconv", "hook-post-index-change"} <= {p.name for p in marks.iterdir()}


def test_inherited_git_variables_do_not_redirect_our_git(booby_trapped, monkeypatch, tmp_path):
    root, marks = booby_trapped
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", str(tmp_path / "trap.sh"))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    assert "return a + b" in call(root, "git", subcommand="diff").text
    assert list(marks.iterdir()) == []


@pytest.mark.parametrize("subcommand,args", [
    ("diff", ["--no-index", "/etc/hostname", "x"]),
    ("diff", ["/etc/hostname"]),
    ("diff", ["--", "../outside.txt"]),
    ("show", ["HEAD:../../etc/hostname"]),
    ("diff", ["--output=/tmp/dsv4-git-out"]),
    ("diff", ["--output", "/tmp/dsv4-git-out"]),
    ("diff", ["-U", "--output=/tmp/dsv4-git-out"]),
    ("log", ["--format", "--output=/tmp/dsv4-git-out"]),
    ("log", ["--grep", "--output=/tmp/dsv4-git-out"]),
    ("log", ["-n", "--output=/tmp/dsv4-git-out"]),
    ("log", ["-c", "core.pager=sh"]),
    ("log", ["--git-dir=/tmp"]),
    ("log", ["--work-tree=/tmp"]),
    ("diff", ["--ext-diff"]),
    ("diff", ["--textconv"]),
    ("log", ["--show-signature"]),
    ("log", ["--format=%G?"]),
    ("log", ["--exec-path=/tmp"]),
    ("show", [":(top)/etc"]),
    ("status", ["--porcelain", "/etc"]),
    ("config", ["core.pager", "sh"]),
    ("checkout", ["."]),
    ("-c", ["x=y", "status"]),
    ("--git-dir=/tmp", ["status"]),
])
def test_git_tool_refuses_what_is_not_allowed(calc_repo, subcommand, args):
    result = call(calc_repo, "git", subcommand=subcommand, args=args)
    assert result.is_error and ("not allowed" in result.text or "outside the repository" in result.text)
    assert not Path("/tmp/dsv4-git-out").exists()


def test_git_tool_still_answers_ordinary_questions(calc_repo):
    (calc_repo / "calc" / "__init__.py").write_text("changed\n")
    assert "calc/__init__.py" in call(calc_repo, "git", subcommand="status", args=["--short"]).text
    assert "changed" in call(calc_repo, "git", subcommand="diff", args=["--", "calc/__init__.py"]).text
    assert "initial" in call(calc_repo, "git", subcommand="log", args=["--oneline", "-n", "5"]).text
    assert "initial" in call(calc_repo, "git", subcommand="log", args=["-3", "--format=%s"]).text
    assert "def add" in call(calc_repo, "git", subcommand="show", args=["HEAD:calc/__init__.py"]).text
    assert "1 file changed" in call(calc_repo, "git", subcommand="diff", args=["--stat", "HEAD"]).text
    assert "changed" in call(calc_repo, "git", subcommand="diff", args=["-U1", "--format=%s", "HEAD"]).text
    assert "initial" in call(calc_repo, "git", subcommand="log", args=["--grep", "init", "--pretty"]).text
    assert "calc/__init__.py" in call(calc_repo, "git", subcommand="status", args=["-uall", "-s"]).text


def test_hooks_dir_is_empty(calc_repo):
    from dsv4.tools.gitcmd import empty_hooks_dir
    folder = empty_hooks_dir()
    assert folder.is_dir() and list(folder.iterdir()) == [] and stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.fixture
def filtered_repo(calc_repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """calc_repo whose .gitattributes select clean/smudge/process filters that its config (and a config file it
    includes from the work tree) defines as programs touching marker files; one filter is `required`."""
    marks = tmp_path / "filter-marks"
    marks.mkdir()
    trap = tmp_path / "filter-trap.sh"
    trap.write_text(f"#!/bin/sh\ntouch {marks}/$1\ncat\n")
    trap.chmod(0o755)
    for key, value in (("filter.evil.clean", f"{trap} clean"), ("filter.evil.smudge", f"{trap} smudge"),
                       ("filter.evil.required", "true"), ("filter.Proc.process", f"{trap} process"),
                       ("include.path", "../included.gitconfig")):
        git(calc_repo, "config", key, value)
    # A name with a dot and upper case, defined in a file the repository itself carries.
    (calc_repo / "included.gitconfig").write_text(
        f'[filter "Up.Dot"]\n\tclean = {trap} included-clean\n\tsmudge = {trap} included-smudge\n')
    (calc_repo / ".gitattributes").write_text("*.py filter=evil\n*.toml filter=Up.Dot\n*.md filter=Proc\n")
    (calc_repo / "README.md").write_text("# calc\n")
    git(calc_repo, "-c", "filter.evil.clean=cat", "-c", "filter.evil.smudge=cat", "-c", "filter.Proc.process=",
        "-c", "filter.Up.Dot.clean=cat", "add", "-A")
    git(calc_repo, "-c", "filter.evil.clean=cat", "commit", "-qm", "attributes")
    for path in list(marks.iterdir()):
        path.unlink()
    (calc_repo / "calc" / "__init__.py").write_text("def add(a, b):\n    return a + b\n")
    (calc_repo / "pyproject.toml").write_text((calc_repo / "pyproject.toml").read_text() + "# touched\n")
    (calc_repo / "README.md").write_text("# calc, changed\n")
    (calc_repo / "new.py").write_text("x = 1\n")
    return calc_repo, marks


def test_the_filter_traps_are_real(filtered_repo):
    root, marks = filtered_repo
    subprocess.run(["git", "status"], cwd=root, capture_output=True)
    subprocess.run(["git", "add", "-A"], cwd=root, capture_output=True)
    (root / "calc" / "__init__.py").unlink()
    subprocess.run(["git", "checkout", "--", "calc/__init__.py"], cwd=root, capture_output=True)
    assert {"clean", "smudge", "process", "included-clean"} <= {p.name for p in marks.iterdir()}


def test_no_filter_runs_in_any_git_call_of_ours(filtered_repo):
    root, marks = filtered_repo
    for subcommand, args in (("status", []), ("status", ["--short", "-uall"]), ("diff", []), ("diff", ["HEAD"]),
                             ("diff", ["--stat"]), ("log", ["-p", "-n", "2"]), ("show", ["HEAD"]),
                             ("show", ["HEAD:calc/__init__.py"])):
        result = call(root, "git", subcommand=subcommand, args=args)
        assert not result.is_error, (subcommand, args, result.text)
        assert list(marks.iterdir()) == [], (subcommand, args)
    assert "return a + b" in call(root, "git", subcommand="diff").text
    patch, files = diff_against_head(root)
    assert "+    return a + b" in patch and {"calc/__init__.py", "new.py", "README.md", "pyproject.toml"} <= set(files)
    store = CheckpointStore(root)
    checkpoint = store.capture("s", 1)
    (root / "calc" / "__init__.py").write_text("broken\n")
    assert store.restore(checkpoint) == ["calc/__init__.py"]
    assert (root / "calc" / "__init__.py").read_text() == "def add(a, b):\n    return a + b\n"  # the raw bytes
    scan_repo(root)
    repo_files(root, root)
    change_times(root, ["calc/__init__.py"], {})
    find_repo(root)
    assert work_tree_state(root) == ("main", True) and "README.md" in tracked_files(root)
    assert list(marks.iterdir()) == []


def test_a_headless_run_runs_no_filter(filtered_repo, write_script):
    root, marks = filtered_repo
    script = [{"content": "", "tool_calls": [{"name": "git", "arguments": {"subcommand": "status"}}]},
              {"content": "", "tool_calls": [{"name": "edit_file", "arguments": {
                  "path": "calc/__init__.py", "old_string": "a + b", "new_string": "b + a"}}]},
              {"content": "", "tool_calls": [{"name": "git", "arguments": {"subcommand": "diff"}}]},
              {"content": "done"}]
    proc = run_cli(["run", "--headless", "swap", "--backend", "scripted", "--script", str(write_script(script)),
                    "--output-format", "json"], root)
    report = json.loads(proc.stdout)
    assert report["files_changed"] == ["calc/__init__.py"] and "+    return b + a" in report["patch"], proc.stderr
    assert list(marks.iterdir()) == []


def test_filter_names_and_their_blanking():
    from dsv4.tools.git_filters import blanked_filters, config_environment, filter_names
    names = filter_names(["filter.evil.clean", "FILTER.Up.Dot.smudge", "filter.a=b.process", "filter.x",
                          "user.name", "diff.evil.textconv"])
    assert names == {"evil", "Up.Dot", "a=b"}
    blanked = blanked_filters(["a=b"])
    assert blanked == {"filter.a=b.clean": "", "filter.a=b.smudge": "", "filter.a=b.process": "",
                       "filter.a=b.required": "false"}
    env = config_environment(blanked)
    assert env["GIT_CONFIG_COUNT"] == "4" and env["GIT_CONFIG_KEY_0"] == "filter.a=b.clean"


def test_an_unreadable_git_config_is_a_failed_command_not_a_crash(calc_repo):
    from dsv4.tools.gitcmd import run_git
    (calc_repo / ".git" / "config").write_text("[core\nbroken = = =\n")
    result = run_git(calc_repo, "status")
    assert not result.ok and "config" in result.error_text
    tool = call(calc_repo, "git", subcommand="status")
    assert tool.is_error and "git configuration" in tool.text


def test_the_front_ends_git_facts_outside_a_repository(tmp_path):
    assert work_tree_state(tmp_path) == ("", False) and tracked_files(tmp_path) == []
    assert work_tree_state(tmp_path / "gone") == ("", False)


def test_a_submodules_own_filter_never_runs(calc_repo, tmp_path):
    """`git status` checks a submodule's work tree with a child git that reads the submodule's config: ours never
    looks inside (a changed submodule commit still shows)."""
    marks = tmp_path / "sub-marks"
    marks.mkdir()
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "a.txt").write_text("a\n")
    (inner / ".gitattributes").write_text("* filter=evil\n")
    git(inner, "init", "-q")
    git(inner, "add", "-A")
    git(inner, "commit", "-qm", "inner")
    git(calc_repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(inner), "sub")
    git(calc_repo, "commit", "-qm", "submodule")
    trap = tmp_path / "sub-trap.sh"
    trap.write_text(f"#!/bin/sh\ntouch {marks}/$1\ncat\n")
    trap.chmod(0o755)
    git(calc_repo / "sub", "config", "filter.evil.clean", f"{trap} clean")
    (calc_repo / "sub" / "a.txt").write_text("changed\n")
    subprocess.run(["git", "status"], cwd=calc_repo, capture_output=True)
    assert [p.name for p in marks.iterdir()] == ["clean"]  # the trap is real
    (marks / "clean").unlink()
    for subcommand in ("status", "diff"):
        assert not call(calc_repo, "git", subcommand=subcommand).is_error
        assert list(marks.iterdir()) == [], subcommand
    diff_against_head(calc_repo)
    assert list(marks.iterdir()) == [], "diff"
    work_tree_state(calc_repo)
    assert list(marks.iterdir()) == []


def test_submodule_configs_are_scanned_for_filter_names_includes_and_nesting(tmp_path):
    from dsv4.tools.git_filters import submodule_filter_names
    work = tmp_path / "work"
    modules = work / ".git" / "modules"
    nested = modules / "libs" / "a" / "modules" / "b"
    for git_dir in (modules / "libs" / "a", nested):
        git_dir.mkdir(parents=True)
        (git_dir / "HEAD").write_text("ref: refs/heads/main\n")
    (modules / "libs" / "a" / "objects" / "config").mkdir(parents=True)  # not a config file: never read
    (modules / "libs" / "a" / "config").write_text(
        '[core]\n\tbare = false\n[filter "we\\"ird"] clean = x\n[include]\n\tpath = "../../../../extra.cfg"\n')
    (nested / "config.worktree").write_text("[FILTER.OldStyle]\n\tsmudge = y\n")
    (work / "extra.cfg").write_text('[filter "from-include"]\n\tprocess = z\n[include]\npath = extra.cfg\n')
    assert submodule_filter_names(work / "deep" / "er") == {'we"ird', "from-include", "OldStyle", "oldstyle"}
    worktree = tmp_path / "linked"
    (work / ".git" / "worktrees" / "linked").mkdir(parents=True)
    (work / ".git" / "worktrees" / "linked" / "commondir").write_text("../..\n")
    worktree.mkdir()
    (worktree / ".git").write_text(f"gitdir: {work / '.git' / 'worktrees' / 'linked'}\n")
    assert "from-include" in submodule_filter_names(worktree)  # a linked worktree shares the submodules
    assert submodule_filter_names(tmp_path / "elsewhere") == set()
