"""The `memory` commands in a real subprocess, in a real git repository, through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def memory(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsv4.agent.cli", "memory", *args], cwd=repo, text=True,
                          capture_output=True, env=dict(os.environ), timeout=120)


def test_remember_list_show_context_export_forget(calc_repo: Path) -> None:
    first = memory(calc_repo, "remember", "Use tabs for indentation.", "--key", "indentation", "--kind", "preference",
                   "--json")
    assert first.returncode == 0, first.stderr
    old_id = json.loads(first.stdout)["item"]["id"]
    second = memory(calc_repo, "remember", "Use 4 spaces.", "--key", "indentation", "--kind", "preference", "--pin")
    assert second.returncode == 0 and f"replaces {old_id}" in second.stdout
    listed = json.loads(memory(calc_repo, "list", "--json").stdout)
    assert [i["text"] for i in listed] == ["Use 4 spaces."]
    new_id = listed[0]["id"]
    assert len(json.loads(memory(calc_repo, "list", "--all", "--json").stdout)) == 2
    shown = json.loads(memory(calc_repo, "show", new_id, "--json").stdout)
    assert [h["status"] for h in shown["history"]] == ["superseded", "active"]
    context = memory(calc_repo, "context")
    assert context.returncode == 0 and "Use 4 spaces." in context.stdout and "tabs" not in context.stdout
    block = json.loads(memory(calc_repo, "context", "--json").stdout)
    assert block["text"] == context.stdout and block["pinned_ids"] == [new_id]
    exported = json.loads(memory(calc_repo, "export", "--json").stdout)
    assert {i["id"] for i in exported["items"]} == {old_id, new_id}
    forgot = memory(calc_repo, "forget", "--key", "indentation", "--json")
    assert forgot.returncode == 0 and set(json.loads(forgot.stdout)["ids"]) == {old_id, new_id}
    assert memory(calc_repo, "context").stdout == ""
    assert memory(calc_repo, "list").stdout.strip() == "no memories"


def test_recall_and_pin_unpin(calc_repo: Path) -> None:
    item = json.loads(memory(calc_repo, "remember", "Deploy with make release.", "--json").stdout)["item"]
    hits = json.loads(memory(calc_repo, "recall", "deploy release", "--json").stdout)["hits"]
    assert hits[0]["item"]["id"] == item["id"]
    assert memory(calc_repo, "pin", item["id"]).stdout.strip() == f"pinned {item['id']}"
    assert json.loads(memory(calc_repo, "context", "--json").stdout)["pinned_ids"] == [item["id"]]
    assert memory(calc_repo, "unpin", item["id"]).stdout.strip() == f"unpinned {item['id']}"


def test_errors_are_one_line_on_stderr_with_exit_2(calc_repo: Path) -> None:
    for args, message in [
        (("forget", "m-000000000000"), "no memory"),
        (("remember", "  "), "empty"),
        (("forget",), "an ID or --key"),
        (("remember", "x", "--scope", "session"), "needs a session"),
        (("context", "--budget", "10"), None),
    ]:
        proc = memory(calc_repo, *args)
        if message is None:
            assert proc.returncode == 0
            continue
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and message in proc.stderr


def test_pinned_over_budget_shows_an_error(calc_repo: Path) -> None:
    memory(calc_repo, "remember", "pinned " * 50, "--pin")
    proc = memory(calc_repo, "context", "--budget", "40")
    assert proc.returncode == 2 and "pinned memories need" in proc.stderr


def test_corrupted_database_is_a_clear_error_and_is_left_alone(calc_repo: Path, dsv4_home: Path) -> None:
    db = dsv4_home / "memory" / "memory.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database" * 100)
    proc = memory(calc_repo, "list")
    assert proc.returncode == 2 and "unreadable" in proc.stderr and "move it aside" in proc.stderr
    assert db.read_bytes() == b"this is not a database" * 100


def test_user_scope_works_outside_a_repository(tmp_path: Path) -> None:
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert memory(outside, "remember", "I prefer short answers.", "--scope", "user").returncode == 0
    assert "short answers" in memory(outside, "context").stdout
    proc = memory(outside, "remember", "repo thing")
    assert proc.returncode == 2 and "needs a repository" in proc.stderr


def test_forget_from_the_command_line_redacts_the_session_log_too(calc_repo: Path, dsv4_home: Path, write_script) -> None:
    from ...conftest import run_cli

    marker = "MARKER-c41d-cli-forget"
    script = write_script([{"content": f"Noted: the release branch is {marker}."}])
    run = run_cli(["run", "--headless", f"the release branch is {marker}", "--backend", "scripted", "--script", str(script)],
                  calc_repo)
    assert run.returncode == 1 and "session:" in run.stdout, run.stderr  # 1: calc's tests still fail
    assert memory(calc_repo, "remember", f"the release branch is {marker}", "--key", "release").returncode == 0
    assert marker.encode() in (dsv4_home / "sessions.db").read_bytes()
    forgot = json.loads(memory(calc_repo, "forget", "--key", "release", "--json").stdout)
    assert forgot["events_redacted"] >= 2  # the user message and the reply that quoted it
    for path in dsv4_home.rglob("*"):
        if path.is_file():
            assert marker.encode() not in path.read_bytes(), path


def test_a_remembered_standing_instruction_overrides_the_previous_one(calc_repo: Path) -> None:
    assert memory(calc_repo, "remember", "From now on, always run the tests with pytest -x").returncode == 0
    second = memory(calc_repo, "remember", "From now on, always run the tests with nox")
    assert second.returncode == 0 and "replaces" in second.stdout, second.stdout
    assert memory(calc_repo, "remember", "The API lives in api/").returncode == 0
    listed = json.loads(memory(calc_repo, "list", "--json").stdout)
    assert sorted((i["kind"], i["text"]) for i in listed) == [
        ("fact", "The API lives in api/"), ("preference", "From now on, always run the tests with nox")]
