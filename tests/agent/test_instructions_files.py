"""Instructions files as the peers read them: the user's AGENTS.md and the repository root's in the system prompt,
a subfolder's AGENTS.md added to the conversation once when the task first touches that folder. The real CLI
against a loopback server that records every request."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dsv4.agent.context import INSTRUCTIONS_CAP, repo_instructions

from ..conftest import run_cli


def read(path: str) -> dict[str, Any]:
    return {"content": "", "tool_calls": [{"name": "read_file", "arguments": {"path": path}}]}


def tool_texts(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def headless(repo: Path, server: Any, *extra: str) -> None:
    proc = run_cli(["run", "--headless", "look around", "--base-url", server.base_url, "--model", "replay", *extra], repo)
    assert proc.returncode in (0, 1), proc.stderr  # 1: the calc repository's own test fails


def folders(repo: Path) -> None:
    (repo / "pkg" / "sub").mkdir(parents=True)
    (repo / "pkg" / "AGENTS.md").write_text("PKG RULE: use snake_case.\n")
    (repo / "pkg" / "sub" / "AGENTS.md").write_text("SUB RULE: no globals.\n")
    (repo / "pkg" / "sub" / "CLAUDE.md").write_text("SUB CLAUDE RULE: short functions.\n")
    (repo / "pkg" / "other.py").write_text("x = 1\n")
    (repo / "pkg" / "sub" / "mod.py").write_text("y = 2\n")


def test_user_and_root_instructions_are_in_the_system_prompt_least_specific_first(calc_repo, replay, dsv4_home):
    dsv4_home.mkdir(parents=True, exist_ok=True)
    (dsv4_home / "AGENTS.md").write_text("USER RULE: answer briefly.\n")  # the config dir is DSV4_HOME in tests
    (calc_repo / "AGENTS.md").write_text("ROOT RULE: run the tests.\n")
    (calc_repo / ".dsv4").mkdir()
    (calc_repo / ".dsv4" / "instructions.md").write_text("DSV4 RULE: be careful.\n")
    server = replay([{"content": "ok"}])
    headless(calc_repo, server)
    system = server.requests[0]["messages"][0]["content"]
    assert system.index("USER RULE") < system.index("ROOT RULE") < system.index("DSV4 RULE")


def test_a_subfolders_instructions_join_the_conversation_once_nearest_last(calc_repo, replay):
    folders(calc_repo)
    server = replay([read("pkg/sub/mod.py"), read("pkg/other.py"), read("calc/__init__.py"), {"content": "done"}])
    headless(calc_repo, server)
    system = server.requests[0]["messages"][0]["content"]
    # Not among the system prompt's instructions (its prefix is untouched; the repository block may hold the file).
    assert "## From pkg/" not in system and "<instructions" not in system
    first = tool_texts(server.requests[1])[0]
    assert "y = 2" in first
    assert first.index("PKG RULE") < first.index("SUB RULE") < first.index("SUB CLAUDE RULE")
    assert 'file="pkg/sub/AGENTS.md"' in first and "nearest one wins" in first
    later = tool_texts(server.requests[3])
    assert len(later) == 3 and all("RULE" not in text for text in later[1:])  # once per session
    # A resumed session has them in its View already: not added again.
    again = replay([read("pkg/sub/mod.py"), {"content": "done"}])
    headless(calc_repo, again, "--continue")
    assert "RULE" not in tool_texts(again.requests[1])[-1]
    # A file whose text changed is added again.
    (calc_repo / "pkg" / "AGENTS.md").write_text("PKG RULE v2: use camelCase.\n")
    changed = replay([read("pkg/other.py"), {"content": "done"}])
    headless(calc_repo, changed, "--continue")
    last = tool_texts(changed.requests[1])[-1]
    assert "PKG RULE v2" in last and "SUB RULE" not in last


def test_an_edit_under_a_folder_brings_its_instructions_too(calc_repo, replay):
    folders(calc_repo)
    write = {"content": "", "tool_calls": [{"name": "write_file", "arguments": {"path": "pkg/new.py", "content": "z = 3\n"}}]}
    server = replay([write, {"content": "done"}])
    headless(calc_repo, server, "--permission-mode", "full-auto")
    assert "PKG RULE" in tool_texts(server.requests[1])[0] and "SUB RULE" not in tool_texts(server.requests[1])[0]


def test_instructions_files_that_link_out_of_the_repository_are_not_read(calc_repo, tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY\n")
    os.symlink(secret, calc_repo / "AGENTS.md")
    (calc_repo / "CLAUDE.md").write_bytes(b"big " * INSTRUCTIONS_CAP + b"\xff")
    found = {item.name: item.text for item in repo_instructions(calc_repo)}
    assert "AGENTS.md" not in found
    assert found["CLAUDE.md"].endswith(f"[CLAUDE.md truncated at {INSTRUCTIONS_CAP} bytes]")


def test_a_folder_file_that_links_out_is_not_added(calc_repo, replay, tmp_path):
    secret = tmp_path / "secret.md"
    secret.write_text("PRIVATE NOTES\n")
    (calc_repo / "pkg").mkdir()
    (calc_repo / "pkg" / "a.py").write_text("a = 1\n")
    os.symlink(secret, calc_repo / "pkg" / "AGENTS.md")
    server = replay([read("pkg/a.py"), {"content": "done"}])
    headless(calc_repo, server)
    assert all("PRIVATE" not in text for text in tool_texts(server.requests[1]))


def test_after_a_compaction_a_folders_instructions_are_added_again(calc_repo, tmp_path):
    from dsv4.agent.folder_instructions import FolderInstructions
    from dsv4.agent.sessions import SessionStore

    folders(calc_repo)
    store = SessionStore(tmp_path / "sessions.db")
    session_id = store.create("repo", calc_repo, "scripted")
    tracker = FolderInstructions(calc_repo, store, session_id)
    assert "SUB RULE" in tracker.take(["pkg/sub/mod.py"], turn=1)
    assert tracker.take(["pkg/sub/mod.py", "pkg/other.py"], turn=1) == ""
    assert tracker.take(["calc/__init__.py", "README"], turn=1) == ""  # no folder instructions there
    store.append(session_id, 2, "compacted", {"id": 1})  # the summary may have dropped them
    again = tracker.take(["pkg/other.py"], turn=2)
    assert "PKG RULE" in again and "SUB RULE" not in again
