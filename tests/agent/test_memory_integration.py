"""Engram memory inside real agent runs: tools, the context block, capture, override and forget."""

from __future__ import annotations

import json

from pydantic import TypeAdapter

from dsv4.agent.report import StreamEvent

from ..conftest import run_cli

MARKER = "MARKER-7f2c-do-not-leak"


def system_text(server, request: int = 0) -> str:
    return server.requests[request]["messages"][0]["content"]


def test_remember_override_and_forget_across_sessions(calc_repo, replay, dsv4_home):
    first = replay([{"content": "", "tool_calls": [{"name": "remember", "arguments": {
                        "text": "Run the tests with pytest -x", "key": "test-command"}}]},
                    {"content": "", "tool_calls": [{"name": "remember", "arguments": {
                        "text": f"Deploy target is staging-{MARKER}", "key": "deploy"}}]},
                    {"content": "noted"}])
    run_cli(["run", "--headless", "remember these", "--base-url", first.base_url, "--model", "m"], calc_repo)
    second = replay([{"content": "", "tool_calls": [{"name": "remember", "arguments": {
                         "text": "Run the tests with pytest -q", "key": "test-command"}}]},
                     {"content": "ok"}])
    run_cli(["run", "--headless", "actually use -q", "--base-url", second.base_url, "--model", "m"], calc_repo)
    assert "pytest -x" in system_text(second) and MARKER in system_text(second)

    third = replay([{"content": "", "tool_calls": [{"name": "forget", "arguments": {"id_or_key": "deploy"}}]},
                    {"content": "forgotten"}])
    proc = run_cli(["run", "--headless", "forget the deploy target", "--base-url", third.base_url, "--model", "m",
                    "--output-format", "stream-json"], calc_repo)
    events = [TypeAdapter(StreamEvent).validate_json(line) for line in proc.stdout.splitlines()]
    assert any(e.type == "memory_changed" and e.action == "forgotten" for e in events)
    prompt = system_text(third)
    assert "pytest -q" in prompt and "pytest -x" not in prompt  # the newer value wins, the older is never shown
    # The request after the forget no longer carries the text: not in the system block, not in the history.
    assert MARKER not in json.dumps(third.requests[1]["messages"])
    fourth = replay([{"content": "ok"}])
    run_cli(["run", "--headless", "hello", "--base-url", fourth.base_url, "--model", "m"], calc_repo)
    assert MARKER not in json.dumps(fourth.requests[0])
    for path in dsv4_home.rglob("*"):
        if path.is_file():
            assert MARKER.encode() not in path.read_bytes(), path


def test_explicit_preference_statements_are_captured_and_shown(calc_repo, replay):
    server = replay([{"content": "Understood."}])
    proc = run_cli(["run", "--headless", "From now on, always use tabs for indentation.", "--base-url", server.base_url,
                    "--model", "m", "--output-format", "stream-json"], calc_repo)
    captured = [e for e in (TypeAdapter(StreamEvent).validate_json(l) for l in proc.stdout.splitlines())
                if e.type == "memory_changed" and e.action == "captured"]
    assert captured and "tabs" in captured[0].text
    listing = json.loads(run_cli(["memory", "list", "--json"], calc_repo).stdout)
    assert any("tabs" in json.dumps(item) for item in (listing if isinstance(listing, list) else listing["items"]))
    later = replay([{"content": "ok"}])
    run_cli(["run", "--headless", "hi", "--base-url", later.base_url, "--model", "m"], calc_repo)
    assert "tabs" in system_text(later)


def test_memory_cli_context_is_the_block_the_model_sees(calc_repo, replay):
    assert run_cli(["memory", "remember", "Prefer small commits", "--key", "commits", "--pin"], calc_repo).returncode == 0
    block = run_cli(["memory", "context"], calc_repo).stdout.strip()
    server = replay([{"content": "ok"}])
    run_cli(["run", "--headless", "hi", "--base-url", server.base_url, "--model", "m"], calc_repo)
    assert block and "Prefer small commits" in block and block in system_text(server)
