"""Compaction on scripted long sessions: do they finish, what does each compaction save, what does it cost?

Each session runs the real agent loop (real tools in a temporary git repository, a real SQLite session log)
against the scripted backend with a small context window. Reported per session shape:

- finished: share of turns that ended "done" (the target is 100%: no session gets stuck on its window);
- compactions, and tokens before / after each (the meter's count, reserved output included);
- prefix tokens preserved: the system message and tool schemas, byte-identical in every request;
- summary cost: prompt + completion tokens of the summary requests (0 for the digest fallback);
- peak share of the window any request took, and requests sent that did not fit (target 0);
- compactions skipped because the compacted View would not have been smaller, and compactions made that grew
  the View (target 0); the `manual_compact_every_turn` shape is a user typing `/compact` after every short turn.

    python evals/compaction_bench.py [--turns 200] [--out evals/results/compaction.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dsv4.agent.backends.base import estimate_tokens
from dsv4.agent.backends.script import ScriptedTurn
from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.agent.events import Compacted, CompactionSkipped, ContextUsage
from dsv4.agent.loop import Agent, AgentConfig
from dsv4.agent.messages import system
from dsv4.agent.permissions import Policy
from dsv4.agent.sessions import SessionStore
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
SYSTEM = "You are a coding agent.\n# Repository instructions\n" + "".join(
    f"- Rule {n}: keep the change small and run the tests after it.\n" for n in range(40))


def bash(command: str, content: str = "") -> dict:
    return {"content": content, "tool_calls": [{"name": "bash", "arguments": {"command": command}}]}


def shapes(turns: int) -> dict[str, tuple[int, list[list[dict]], str, bool]]:
    """name -> (window, the steps of each user turn, the scripted summary, whether to /compact after each turn)."""
    summary = "The agent inspected the logs, wrote notes/progress.md and keeps a todo list."
    many = [[bash(f"yes log{n} | head -c 72000", f"step {n}"), {"content": f"turn {n} done"}] for n in range(turns)]
    many[0] = [{"content": "", "tool_calls": [{"name": "write_file", "arguments": {"path": "notes/progress.md", "content": "x\n"}}]},
               {"content": "", "tool_calls": [{"name": "todo", "arguments": {"items": [{"text": "finish", "done": False}]}}]}] + many[0]
    long_turn = [[bash(f"yes out{n} | head -c 30000", f"step {n}") for n in range(60)] + [{"content": "all done"}]]
    mixed = []
    for n in range(turns):
        mixed.append([{"content": "", "tool_calls": [{"name": "write_file", "arguments": {
                          "path": f"src/m{n % 20}.py", "content": f"VALUE = {n}\n" * 200}}]},
                      {"content": "", "tool_calls": [{"name": "read_file", "arguments": {"path": f"src/m{n % 20}.py"}}]},
                      bash(f"yes t{n} | head -c 6000"), {"content": f"turn {n} done"}])
    short = [[bash(f"yes s{n} | head -c 600", f"step {n}"), {"content": f"turn {n} done"}] for n in range(turns)]
    return {"many_turns_3x_window": (6000, many, summary, False), "one_long_turn": (6000, long_turn, summary, False),
            "mixed_edits_16k": (16000, mixed, summary, False), "digest_fallback": (6000, many, "", False),
            "manual_compact_every_turn": (16000, short, summary, True)}


def run_shape(window: int, steps: list[list[dict]], summary: str, manual: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        backend = ScriptedBackend([ScriptedTurn.model_validate(s) for turn in steps for s in turn], summary=summary)
        store = SessionStore(Path(tmp) / "sessions.db")
        session_id = store.create("bench", root, backend.model_id)
        events: list = []
        agent = Agent(backend, Toolbox(Workspace(root)), store, session_id, SYSTEM, Policy(mode="full-auto"),
                      AgentConfig(context_window=window, max_steps=100), emit=events.append)
        started = time.monotonic()
        statuses = []
        for n in range(len(steps)):
            statuses.append(agent.run_turn(f"part {n}").status)
            if manual:
                agent.compact()
        wall = time.monotonic() - started
        store.close()
    compacted = [e for e in events if isinstance(e, Compacted)]
    skipped = [e for e in events if isinstance(e, CompactionSkipped)]
    usage = [e for e in events if isinstance(e, ContextUsage)]
    prefixes = {json.dumps([r[0].model_dump(), agent.tools]) for r in backend.requests}
    prefix_tokens = estimate_tokens([system(SYSTEM)]) + len(json.dumps(agent.tools)) // 4
    saved = [1 - e.tokens_after / e.tokens_before for e in compacted]
    return {
        "window": window, "turns": len(steps), "requests": len(backend.requests),
        "finished_share": statuses.count("done") / len(statuses),
        "compactions": len(compacted), "model_summaries": sum(e.source == "model" for e in compacted),
        "skipped": len(skipped), "grew": sum(e.tokens_after >= e.tokens_before for e in compacted),
        "tokens_before_min": min((e.tokens_before for e in compacted), default=0),
        "tokens_after_max": max((e.tokens_after for e in compacted), default=0),
        "tokens_before_mean": round(sum(e.tokens_before for e in compacted) / max(1, len(compacted))),
        "tokens_after_mean": round(sum(e.tokens_after for e in compacted) / max(1, len(compacted))),
        "saved_share_mean": round(sum(saved) / max(1, len(saved)), 3),
        "prefix_tokens_preserved": prefix_tokens if len(prefixes) == 1 else 0,
        "prefix_identical": len(prefixes) == 1,
        "summary_tokens_total": sum(e.summary_tokens for e in compacted),
        "summary_tokens_wasted": sum(e.summary_tokens for e in skipped),  # asked for, then not used
        "summary_tokens_per_compaction": round(sum(e.summary_tokens for e in compacted) / max(1, len(compacted))),
        "peak_share": max(e.share for e in usage), "requests_over_window": sum(e.used > e.window for e in usage),
        "wall_s": round(wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "evals" / "results" / "compaction.json")
    args = parser.parse_args()
    results = {name: run_shape(*shape) for name, shape in shapes(args.turns).items()}
    columns = ["window", "turns", "finished_share", "compactions", "skipped", "grew", "tokens_before_mean",
               "tokens_after_mean", "saved_share_mean", "prefix_tokens_preserved", "summary_tokens_per_compaction",
               "peak_share", "requests_over_window", "wall_s"]
    print(f"{'session':<26}" + "".join(f"{c[:12]:>13}" for c in columns))
    for name, row in results.items():
        print(f"{name:<26}" + "".join(f"{row[c]:>13}" for c in columns))
    finished = sum(r["finished_share"] * r["turns"] for r in results.values()) / sum(r["turns"] for r in results.values())
    report = {"bench": "compaction", "python": platform.python_version(), "turns": args.turns,
              "finished_share_all": round(finished, 4), "sessions": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nturns finished, all sessions: {finished:.1%}  ->  {args.out}")
    sys.exit(0 if finished == 1 and not any(r["grew"] for r in results.values()) else 1)


if __name__ == "__main__":
    main()
