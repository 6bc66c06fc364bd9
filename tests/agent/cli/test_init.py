"""`dsv4-code init`: a starting AGENTS.md drafted from the repo map, written atomically, never over an existing one
without --force. The real CLI in a subprocess on a real git repository."""

from __future__ import annotations

import os

from ...conftest import run_cli


def test_init_drafts_agents_md_from_the_repo_map(calc_repo):
    (calc_repo / "README.md").write_text("# Calc\n\nA tiny calculator library for the tests.\n")
    proc = run_cli(["init"], calc_repo)
    assert proc.returncode == 0, proc.stderr
    text = (calc_repo / "AGENTS.md").read_text()
    assert f"wrote {calc_repo / 'AGENTS.md'}" in proc.stdout
    assert "A tiny calculator library for the tests." in text
    assert "- `calc/`: 1 file, mostly python" in text and "- `tests/`" in text
    assert "`calc/__init__.py`: add, mul" in text
    assert "Run the tests with `python -m pytest -q`." in text  # portable: no path of this machine
    assert str(calc_repo.parent) not in text
    assert [p.name for p in calc_repo.iterdir() if p.name.startswith(".AGENTS.md")] == []  # no temp file left


def test_init_refuses_to_overwrite_without_force(calc_repo):
    (calc_repo / "AGENTS.md").write_text("my own rules\n")
    proc = run_cli(["init"], calc_repo)
    assert proc.returncode == 1 and "exists already" in proc.stderr and "--force" in proc.stderr
    assert "Traceback" not in proc.stderr and (calc_repo / "AGENTS.md").read_text() == "my own rules\n"
    printed = run_cli(["init", "--print"], calc_repo)
    assert printed.returncode == 0 and printed.stdout.startswith("# AGENTS.md")
    assert (calc_repo / "AGENTS.md").read_text() == "my own rules\n"
    forced = run_cli(["init", "--force"], calc_repo)
    assert forced.returncode == 0 and forced.stdout.startswith("replaced ")
    assert (calc_repo / "AGENTS.md").read_text() == printed.stdout


def test_force_replaces_a_symlink_without_writing_through_it(calc_repo, tmp_path):
    outside = tmp_path / "outside.md"
    outside.write_text("not yours to change\n")
    os.symlink(outside, calc_repo / "AGENTS.md")
    assert run_cli(["init"], calc_repo).returncode == 1
    assert run_cli(["init", "--force"], calc_repo).returncode == 0
    assert not (calc_repo / "AGENTS.md").is_symlink() and outside.read_text() == "not yours to change\n"


def test_init_outside_a_repository_is_a_usage_error(tmp_path):
    proc = run_cli(["init"], tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
