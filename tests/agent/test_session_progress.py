"""AgentSession.open reports progress (the model, the repository's files with tags), builds its block from a repo
map on the on-disk tag cache, and its watcher keeps that same map fresh instead of scanning the tree again."""

from __future__ import annotations

import threading
import time

from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.agent.config import Settings
from dsv4.agent.progress import Progress
from dsv4.agent.repo import find_repo
from dsv4.agent.session import AgentSession, agent_config, session_policy


def open_session(root, on_progress=None, backend=None) -> AgentSession:
    settings = Settings(backend="scripted", script=None) if backend is None else Settings()
    return AgentSession.open(find_repo(root), settings, session_policy(settings), agent_config(settings),
                             backend=backend or ScriptedBackend([]), on_progress=on_progress)


def test_open_reports_the_repository_scan_and_the_watcher_reuses_its_map(calc_repo):
    for n in range(30):
        (calc_repo / "calc" / f"m{n}.py").write_text(f"def f{n}(x):\n    return x + {n}\n")
    seen: list[Progress] = []
    session = open_session(calc_repo, seen.append)
    scans = [p for p in seen if p.stage == "repository"]
    assert scans[0].total == 32 and scans[-1].done == 32 and all(p.unit == "files" for p in scans)
    assert [p.done for p in scans] == sorted(p.done for p in scans)  # it only goes forward
    assert "model" not in {p.stage for p in seen}  # the backend was handed in: nothing to load
    assert session._repository.parsed == 32 and session._repository.timings["scan_and_tags"] > 0
    session.watch_files()
    try:
        assert session._watcher.repo_map is session._repo_map  # no second scan and parse on mount
        (calc_repo / "calc" / "m0.py").write_text("def renamed(x):\n    return x\n")
        deadline = time.monotonic() + 20
        while "calc/m0.py" not in session.changed_files() and time.monotonic() < deadline:
            session._watcher.idle()
            threading.Event().wait(0.01)  # the watchdog event is on its way
        assert session.changed_files() == ["calc/m0.py"]
        assert "renamed" in {d.name for d in session._repo_map.tags["calc/m0.py"].defs}  # the block's own map
        again = open_session(calc_repo, seen.append)
        # The watcher parsed the edit into the on-disk tag cache, so the next session parses nothing.
        assert again._repository.parsed == 0 and again._repository.from_cache == 32
        again.close()
    finally:
        session.close()
