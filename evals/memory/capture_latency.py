"""The latency a capture adds to a turn: `MemoryStore.capture` on a realistic user prompt, real store, warm
embedder.

    .venv/bin/python evals/memory/capture_latency.py [--runs 60] [--items 400] [--out evals/results/memory_capture_latency.json]

The store (a fresh `$DSV4_HOME` in a temporary directory) holds `--items` memories first, 25 of them
preferences (one per subject of slot_pairs.py), the rest facts, indexed; the embedder is all-MiniLM-L6-v2, loaded and warmed before timing
(the TUI warms it at start; a headless run pays the load once, reported apart). Cases, each timed `--runs`
times (p50, p95, max in ms):

- no statement: a ~200-word coding request with a code block (what most turns are): parsing only;
- new preference: the prompt plus "From now on, ..." of a slot no item holds: rule 1 misses, rule 2 embeds
  the new slot and compares it with the slots of every active preference of the scope (their vectors kept
  from earlier captures), then the insert (the slots are alike, so rule 2 often replaces the previous one);
- override: the prompt plus a new value of an occupied slot: rule 1 finds it, supersede, the KV-snapshot
  check;
- parse only: `capture_preferences` alone on the override prompt (no store);
- new preference, cold slot cache: the first one of the process (slot vectors are kept in memory only);
- turn, no statement / turn, override: a whole `AgentSession.run_turn` with the scripted model (one reply) in a
  real git repository and session store, the prompt alone or with a new value of an occupied slot: the
  difference of the medians is what a capture adds to a turn, the live memory note (agent/memory_notes.py)
  included.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from dsv4.memory import MemoryStore, capture_preferences

sys.path.insert(0, str(Path(__file__).resolve().parent))
from session_repo import git_repo  # noqa: E402
from slot_pairs import SUBJECTS as SLOT_SUBJECTS  # noqa: E402

REPO = "repo-latency"
PROMPT = """I'm seeing a failure in the config loader when the settings file has a trailing comma. Can you look at
src/app/config.py and the loader tests in tests/test_config.py? The traceback is:

```
Traceback (most recent call last):
  File "src/app/config.py", line 88, in load
    data = json.loads(text)
json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: line 12 column 1
```

I think we should accept JSON5-style trailing commas in user config but keep the strict parser for the lock
file, since that one is machine-written. Please keep the public API of load() the same, add a test for the
trailing-comma case and one for a lock file with a trailing comma that must still be rejected, and update
the docstring. The CI runs on Python 3.11 and 3.12; don't add a new dependency for this if a small
pre-processing step is enough. When you're done, run the tests and tell me what changed."""
SUBJECTS = ["run the tests with", "format the code with", "install packages with", "lint with",
            "type-check with", "write commit messages in", "answer in", "set the log level to"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(times: list[float]) -> dict:
    ms = [t * 1000 for t in times]
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(percentile(ms, 0.95), 2),
            "max_ms": round(max(ms), 2), "runs": len(ms)}


def turn_latency(root: Path, runs: int) -> dict[str, list[float]]:
    """Whole turns through AgentSession with the scripted model, with and without a captured override."""
    import os

    from dsv4.agent.backends.script import ScriptedTurn
    from dsv4.agent.backends.scripted import ScriptedBackend
    from dsv4.agent.config import load_settings
    from dsv4.agent.repo import find_repo
    from dsv4.agent.session import AgentSession, agent_config, session_policy

    repo_root = git_repo(root / "repo")
    os.environ["DSV4_HOME"] = str(root / "home")
    repo = find_repo(repo_root)
    settings = load_settings(repo.root, permission_mode="full-auto")
    backend = ScriptedBackend([ScriptedTurn(content="ok") for _ in range(2 * runs + 1)])
    session = AgentSession.open(repo, settings, session_policy(settings), agent_config(settings), backend=backend)
    session.warm_up()
    session.run_turn(f"{PROMPT}\nFrom now on, run the tests with pytest -x.")  # the slot is occupied from here on
    timings: dict[str, list[float]] = {"turn, no statement": [], "turn, override": []}
    for run in range(runs):
        t0 = time.perf_counter()
        session.run_turn(PROMPT)
        timings["turn, no statement"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        session.run_turn(f"{PROMPT}\nFrom now on, run the tests with nox -s tests{run}.")
        timings["turn, override"].append(time.perf_counter() - t0)
    assert sum(m.content.startswith("[Memory update:") for m in backend.requests[-1] if m.content) == runs + 1
    session.close(status="done")
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from dsv4.memory import MiniLMEmbedder

    started = time.perf_counter()
    embedder = MiniLMEmbedder()
    load_s = time.perf_counter() - started
    embedder.embed(["warm up the embedder"])
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="dsv4-capture-") as tmp:
        store = MemoryStore.open(Path(tmp), embedder=embedder)
        for name, (phrasings, values) in SLOT_SUBJECTS.items():  # one preference per subject of the pair set
            store.remember(phrasings[0].format(v=values[0]).capitalize() + ".", kind="preference", repo_id=REPO)
        for n in range(args.items - len(SLOT_SUBJECTS)):
            store.remember(f"Module {n} keeps its fixtures in tests/fixtures/m{n}.", repo_id=REPO)
        store.recall("fixtures", repo_id=REPO)  # index everything, as a real store would be
        timings: dict[str, list[float]] = {"no statement": [], "new preference": [], "override": [], "parse only": []}
        # The first rule-2 capture of a process embeds the slot of every active preference of the scope.
        t0 = time.perf_counter()
        [done] = store.capture(f"{PROMPT}\nFrom now on, keep release notes in docs/notes.", repo_id=REPO, session_id="s")
        cold_s = time.perf_counter() - t0
        assert done.superseded is None, done
        for run in range(args.runs):
            session = f"s{run}"
            t0 = time.perf_counter()
            assert store.capture(PROMPT, repo_id=REPO, session_id=session) == []
            timings["no statement"].append(time.perf_counter() - t0)
            new = f"{PROMPT}\nFrom now on, store build artifact{run} files in out/dir{run}."  # a new valued slot
            t0 = time.perf_counter()
            [done] = store.capture(new, repo_id=REPO, session_id=session)
            timings["new preference"].append(time.perf_counter() - t0)
            assert done.item.slot not in {i.slot for i in store.list(REPO) if i.id != done.item.id}  # rule 1 missed
            override = f"{PROMPT}\nFrom now on, {SUBJECTS[run % len(SUBJECTS)]} value{run}."
            t0 = time.perf_counter()
            [done] = store.capture(override, repo_id=REPO, session_id=session)
            timings["override"].append(time.perf_counter() - t0)
            if run >= len(SUBJECTS):
                assert done.superseded is not None, done
            t0 = time.perf_counter()
            capture_preferences(override)
            timings["parse only"].append(time.perf_counter() - t0)
        preferences = len([i for i in store.effective(REPO, None) if i.kind == "preference"])
        store.close()
        turns = turn_latency(Path(tmp) / "turns", min(args.runs, 30))
    results = {name: summary(values) for name, values in timings.items()}
    results.update({name: summary(values) for name, values in turns.items()})
    added_ms = round(results["turn, override"]["p50_ms"] - results["turn, no statement"]["p50_ms"], 2)
    results["new preference, cold slot cache"] = summary([cold_s])
    print(f"store: {args.items} items at start, {preferences} active preferences at the end; embedder load "
          f"{load_s:.2f} s (once per process, before timing)")
    print(f"{'case':<32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, s in results.items():
        print(f"{name:<32} {s['p50_ms']:>8.2f} {s['p95_ms']:>8.2f} {s['max_ms']:>8.2f}")
    print(f"a captured override adds {added_ms} ms to a turn (difference of the medians)")
    if args.out:
        args.out.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                        "machine": platform.platform(), "items": args.items,
                                        "active_preferences_at_end": preferences, "embedder_load_s": round(load_s, 2),
                                        "turn_added_by_capture_p50_ms": added_ms, "cases": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
