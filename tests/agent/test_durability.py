"""A killed process loses at most the step in flight, and the session resumes with everything else."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from dsv4.agent.sessions import SessionStore

from ..conftest import FIX_SCRIPT, run_cli


def test_kill_9_mid_turn_then_resume(calc_repo, write_script, dsv4_home, replay):
    script = [{"content": "Looking.", "tool_calls": [{"name": "read_file", "arguments": {"path": "calc/__init__.py"}}]},
              {"content": "", "tool_calls": [{"name": "edit_file", "arguments": {
                  "path": "calc/__init__.py", "old_string": "a - b", "new_string": "a + b"}}]},
              {"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": "sleep 60"}}]},
              {"content": "never reached"}]
    proc = subprocess.Popen([sys.executable, "-m", "dsv4.agent.cli", "run", "--headless", "fix add", "--allow-shell",
                             "--backend", "scripted", "--script", str(write_script(script))],
                            cwd=calc_repo, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db_path = dsv4_home / "sessions.db"
    deadline = time.monotonic() + 60
    session_id = None
    while time.monotonic() < deadline:
        if db_path.exists():
            store = SessionStore(db_path)
            rows = list(store.db.query("select session_id, payload from events where kind = 'message'"))
            store.close()
            if any('"bash"' in r["payload"] for r in rows):
                session_id = rows[0]["session_id"]
                break
        time.sleep(0.1)
    assert session_id is not None, "the run never reached the bash step"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    store = SessionStore(db_path)
    messages = store.messages(session_id)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool"]
    assert "interrupted" in messages[-1].content
    assert [e["payload"]["path"] for e in store.events(session_id, "file_changed")] == ["calc/__init__.py"]
    assert "a + b" in (calc_repo / "calc" / "__init__.py").read_text()
    store.close()

    listed = json.loads(run_cli(["sessions", "--json"], calc_repo).stdout)
    assert [s["id"] for s in listed] == [session_id]

    server = replay([{"content": "", "tool_calls": [{"name": "run_tests", "arguments": {}}]},
                     {"content": "Resumed and verified: tests pass."}])
    resumed = run_cli(["run", "--headless", "continue where you stopped", "--resume", session_id[:12],
                       "--base-url", server.base_url, "--model", "replay", "--output-format", "json"], calc_repo)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    sent = server.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant", "tool", "user"]
    assert sent[1]["content"] == "fix add" and "def add" in sent[3]["content"]
    assert json.loads(resumed.stdout)["session_id"] == session_id
