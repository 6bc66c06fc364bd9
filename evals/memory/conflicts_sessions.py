"""The conflict set of conflicts_bench.py through real agent sessions: what reaches the model, request by request.

    .venv/bin/python evals/memory/conflicts_sessions.py [--chains 520] [--seed 16] [--out evals/results/memory_conflicts_sessions.json]

The same >= 500 chains (captured preferences, remembered preferences, keyed facts and preferences; 2-5
paraphrased values each, eight chains to a `$DSV4_HOME`), but every value is written by a user turn of an
`AgentSession` with the scripted model in a real git repository, each step in a new session: a captured
preference is the user's own message ("From now on, ..."); the others are the model's `remember` tool call
(kind preference without a key, or with the key). What the model was sent is read from the backend's requests:

- at the start of each later session, the memory block of the system message (the text after "# Memory") must
  hold the newest value written so far and none of the older ones;
- live, in the session that writes a captured value: the same turn's request must end its memory notes with
  one that holds the new value and, from the second value on, says what it replaces (agent/memory_notes.py).

A chain passes when every check of every step passes. Targets: >= 95 % paraphrased, 100 % keyed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conflicts_bench import FRAMES, _holds, generate, judge, shares  # noqa: E402
from session_repo import git_repo  # noqa: E402

from dsv4.agent.backends.script import ScriptedTurn  # noqa: E402
from dsv4.agent.backends.scripted import ScriptedBackend  # noqa: E402
from dsv4.agent.config import load_settings  # noqa: E402
from dsv4.agent.repo import find_repo  # noqa: E402
from dsv4.agent.session import AgentSession, agent_config, session_policy  # noqa: E402

NOTE = "[Memory update:"


def memory_block(system: str) -> str:
    return system[system.find("# Memory"):] if "# Memory" in system else ""


def _turns(chain: dict[str, Any], text: str) -> list[dict[str, Any]]:
    if chain["kind"] == "captured preference":
        return [{"content": "ok"}]
    args: dict[str, Any] = {"text": text[0].upper() + text[1:] + ("" if text.endswith(".") else "."),
                            "kind": "fact" if chain["kind"] == "keyed fact" else "preference"}
    if chain["key"]:
        args["key"] = chain["key"]
    return [{"content": "", "tool_calls": [{"name": "remember", "arguments": args}]}, {"content": "ok"}]


def _prompt(chain: dict[str, Any], text: str, rng: random.Random) -> str:
    if chain["kind"] != "captured preference":
        return f"Please remember this: {text}"
    return "OK, " + text + "." if chain["subject"] == "commit style" else rng.choice(FRAMES).format(s=text)


def _open(repo_root: Path, turns: list[dict[str, Any]]) -> tuple[AgentSession, ScriptedBackend]:
    repo = find_repo(repo_root)
    settings = load_settings(repo.root, permission_mode="full-auto")
    backend = ScriptedBackend([ScriptedTurn.model_validate(t) for t in turns])
    return AgentSession.open(repo, settings, session_policy(settings), agent_config(settings), backend=backend), backend


def run_store(root: Path, chains: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    home, repo = root / "home", git_repo(root / "repo")
    os.environ["DSV4_HOME"] = str(home)
    problems: dict[int, list[str]] = {n: [] for n in range(len(chains))}
    steps = max(len(c["texts"]) for c in chains)
    for step in range(steps + 1):
        order = [n for n, c in enumerate(chains) if step < len(c["texts"])]
        rng.shuffle(order)
        script = [t for n in order for t in _turns(chains[n], chains[n]["texts"][step])] or [{"content": "hello"}]
        session, backend = _open(repo, script)
        if not order:
            session.run_turn("hello")
        for n in order:
            chain = chains[n]
            before = len(backend.requests)
            session.run_turn(_prompt(chain, chain["texts"][step], rng))
            if chain["kind"] == "captured preference":
                notes = [m.content or "" for m in backend.requests[before] if (m.content or "").startswith(NOTE)]
                newest = chain["values"][step]
                last = notes[-1].lower() if notes else ""
                if chain["subject"] == "commit style":
                    ok = f"{newest.lower()} squash" in last
                else:
                    ok = _holds(last, newest)
                if step > 0 and ok:
                    ok = "replaces" in last and (chain["subject"] == "commit style" or _holds(last, chain["values"][step - 1]))
                if not ok:
                    problems[n].append(f"step {step}: the live note lacks the new value or what it replaces: {last[:200]}")
        if step > 0:
            block = memory_block(backend.requests[0][0].content or "")
            for n, chain in enumerate(chains):
                seen = {**chain, "values": chain["values"][:step], "texts": chain["texts"][:step]}
                problem = judge(block, seen)
                if problem:
                    problems[n].append(f"session {step} start: {problem}")
        session.close(status="done")
    return [{"kind": c["kind"], "subject": c["subject"], "length": len(c["values"]), "problems": problems[n],
             "texts": c["texts"]} for n, c in enumerate(chains)]


def run(chains: int = 520, seed: int = 16) -> dict[str, Any]:
    rng = random.Random(seed + 1)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    home_before = os.environ.get("DSV4_HOME")
    try:
        with tempfile.TemporaryDirectory(prefix="dsv4-conflict-sessions-") as tmp:
            for n, group in enumerate(generate(chains, seed)):
                rows += run_store(Path(tmp) / f"store{n}", group, rng)
    finally:
        if home_before is None:
            os.environ.pop("DSV4_HOME", None)
        else:
            os.environ["DSV4_HOME"] = home_before
    return {"chains": len(rows), "seed": seed, "overrides": sum(r["length"] - 1 for r in rows),
            **shares(rows, lambda r: not r["problems"]),
            "failures_by_subject": dict(Counter(r["subject"] for r in rows if r["problems"])),
            "failures": [r for r in rows if r["problems"]], "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=520)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = run(args.chains, args.seed)
    print(f"{report['chains']} chains, {report['overrides']} overrides through agent sessions, {report['seconds']} s")
    print(f"{'kind':<24} {'chains':>6} {'only newest':>11} {'share':>7}")
    for kind, s in report["by_kind"].items():
        print(f"{kind:<24} {s['chains']:>6} {s['passed']:>11} {s['share']:>7.1%}")
    print(f"paraphrased (unkeyed): {report['paraphrased_share']:.1%} (target >= 95 %); keyed: "
          f"{report['keyed_share']:.1%} (target 100 %)")
    for failure in report["failures"][:12]:
        print(f"  {failure['kind']}: {failure['subject']}: {failure['problems'][0]}  <- {failure['texts']}")
    if args.out:
        report.update(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=platform.platform())
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0 if report["paraphrased_share"] >= 0.95 and report["keyed_share"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
