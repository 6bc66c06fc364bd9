"""Engram consistency suite: generated scenarios of overrides, scopes, forgets, pins and concurrent writers,
each run on a fresh store (real SQLite file, real LanceDB directory, hashing embedder) and checked against
an independent oracle after every probe point.

    .venv/bin/python evals/memory/consistency.py [--scenarios 210] [--seed 7] [--out evals/results/memory_consistency.json]

Probes: the assembled context block (every current value present; no superseded, forgotten, shadowed or
foreign value), recall (only current values; the current value of the asked key found), history (exactly
the values not forgotten, in order). Targets: 100 % of scenarios correct; 0 superseded values in any context.
Values are unique tokens, so "present" and "absent" are exact substring checks.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle import Oracle, Probe  # noqa: E402

from dsv4.memory import HashingEmbedder, MemoryStore, PinnedOverBudget  # noqa: E402

REPOS = ("repo-a", "repo-b")
FAMILIES = {"override_chain": 0.28, "scope_precedence": 0.28, "supersede_forget": 0.24, "pin_budget": 0.14,
            "concurrent": 0.06}


class Run:
    """One scenario: the store under test, the oracle, and the probe tally."""

    def __init__(self, home: Path, name: str) -> None:
        self.home, self.name = home, name
        self.store = MemoryStore.open(home, embedder=HashingEmbedder())
        self.oracle = Oracle()
        self.probe = Probe(name)
        self.n = 0
        self.writes_elsewhere = 0

    def value(self) -> str:
        self.n += 1
        return f"v{self.name}n{self.n}q"  # the closing q: no value is a prefix of another

    def write(self, key: str | None, scope: str, repo: str, session: str, pin: bool = False) -> str:
        text = self.value()
        done = self.store.remember(f"Setting {text}", key=key, scope=scope, repo_id=repo, session_id=session, pin=pin,
                                   kind="preference")
        self.oracle.write(done.item.id, text, key, scope, self.store.owner(scope, repo, session), pin)
        return done.item.id

    def write_elsewhere(self, key: str, scope: str, repo: str, session: str) -> None:
        """The same write from a fresh process (a later `dsv4-code` run); this process's store is then reopened."""
        text = self.value()
        code = ("import sys; from pathlib import Path; from dsv4.memory import MemoryStore; "
                "s = MemoryStore.open(Path(sys.argv[1]), embedder=None); "
                "print(s.remember(sys.argv[2], key=sys.argv[3], scope=sys.argv[4], repo_id=sys.argv[5], "
                "session_id=sys.argv[6], kind='preference').item.id)")
        out = subprocess.run([sys.executable, "-c", code, str(self.home), f"Setting {text}", key, scope, repo, session],
                             capture_output=True, text=True, check=True).stdout
        self.oracle.write(out.strip(), text, key, scope, self.store.owner(scope, repo, session), False)
        self.writes_elsewhere += 1
        self.restart()

    def restart(self) -> None:
        self.store.close()
        self.store = MemoryStore.open(self.home, embedder=HashingEmbedder())

    def check(self, repo: str, session: str, keys: list[str], budget: int = 100_000) -> None:
        block = self.store.current_view(repo, session, budget_tokens=budget)
        self.probe.context(block.text, self.oracle, repo, session)
        for key in keys:
            result = self.store.recall(f"{key} setting", repo_id=repo, session_id=session, k=20)
            self.probe.recall([h.item.text for h in result.hits], self.oracle, repo, session, key)
            self.probe.history([i.text for i in self.store.history(key, repo, session)], self.oracle, repo, session, key)


def override_chain(run: Run, rng: random.Random) -> None:
    """One or two keys overridden many times across sessions, store reopens and writes from other processes;
    probed 20 sessions later."""
    keys = [f"topic{k} style" for k in range(rng.randint(1, 2))]
    repo = rng.choice(REPOS)
    for step in range(rng.randint(3, 25)):
        scope = rng.choice(("repo", "repo", "user"))
        if rng.random() < 0.08:
            run.write_elsewhere(rng.choice(keys), scope, repo, f"s{step // 2}")
        else:
            run.write(rng.choice(keys), scope, repo, f"s{step // 2}")
        if rng.random() < 0.2:
            run.restart()
            run.check(repo, f"s{step // 2}", keys)
    run.restart()
    run.check(repo, "s-later-20", keys)


def scope_precedence(run: Run, rng: random.Random) -> None:
    """The same key written in user, repo (two repos) and session scope; every view sees its own winner."""
    keys = ["shared key", "other key"]
    views = [(r, s) for r in REPOS for s in ("s1", "s2")]
    for _ in range(rng.randint(4, 14)):
        repo, session = rng.choice(views)
        run.write(rng.choice(keys), rng.choice(("user", "repo", "session")), repo, session)
        if rng.random() < 0.3:
            run.check(*rng.choice(views), keys)
    for repo, session in views + [("repo-c", "s9")]:
        run.check(repo, session, keys)


def supersede_forget(run: Run, rng: random.Random) -> None:
    """Chains, then forgets (by id of the head or an old value, by key, by key and scope); nothing comes back."""
    keys = ["alpha key", "beta key"]
    repo = "repo-a"
    for _ in range(rng.randint(6, 14)):
        action = rng.random()
        live = run.oracle.live_ids()
        if action < 0.6 or not live:
            run.write(rng.choice(keys + [None]), rng.choice(("repo", "user", "session")), repo, "s1")
        elif action < 0.8:
            target = rng.choice(live)
            run.oracle.forget(run.store.forget(target).ids)
        else:
            key = rng.choice(keys)
            if run.oracle.has_key(key, repo, "s1"):
                run.oracle.forget(run.store.forget(key=key, repo_id=repo, session_id="s1").ids)
        if rng.random() < 0.25:
            run.restart()
        run.check(repo, "s1", keys)


def pin_budget(run: Run, rng: random.Random) -> None:
    """Pinned items survive floods of unpinned ones, restarts and small budgets; an over-budget pin is refused."""
    repo, budget = "repo-a", 400
    run.store.budget_tokens = budget
    pinned = [run.write(f"pinned key {k}", "repo", repo, "s1", pin=True) for k in range(rng.randint(1, 4))]
    for _ in range(rng.randint(20, 60)):
        run.write(None, "repo", repo, "s1")
    if rng.random() < 0.5:  # supersede a pinned value: the pin carries over to the new value
        key = f"pinned key {rng.randrange(len(pinned))}"
        run.write(key, "repo", repo, "s1", pin=True)
    run.restart()
    run.store.budget_tokens = budget
    big = run.store.remember("Setting big " + "padding " * 300, repo_id=repo, kind="note")
    run.oracle.write(big.item.id, "big", None, "repo", repo, False, probe_text=False)
    try:
        run.store.pin(big.item.id, repo)
        run.probe.fail("over-budget pin was accepted")
    except PinnedOverBudget:
        run.probe.ok()
    run.probe.expect(not run.store.get(big.item.id).pinned, "refused pin left the item pinned")
    block = run.store.current_view(repo, "s1", budget_tokens=budget)
    run.probe.expect(block.tokens <= budget, f"block of {block.tokens} tokens over the budget of {budget}")
    expected_pins = run.oracle.pinned_texts(repo, "s1")
    run.probe.expect(all(t in block.text for t in expected_pins), "a pinned value is missing under budget pressure")
    run.probe.context(block.text, run.oracle, repo, "s1", complete=False)


WRITER = """
import sys
from pathlib import Path
from dsv4.memory import HashingEmbedder, MemoryStore
home, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
store = MemoryStore.open(home, embedder=HashingEmbedder())
while not go.exists():
    pass
for n in range(int(sys.argv[4])):
    store.remember(f"Setting v{name}w{n}q", key=f"conc key {n % 3}", repo_id="repo-a", kind="preference")
    store.remember(f"Setting note{name}w{n}q", repo_id="repo-a")
    if n % 4 == 0:
        store.recall("conc key", repo_id="repo-a")
"""


def concurrent(run: Run, rng: random.Random) -> None:
    """Two processes write the same keys at once; afterwards one value per key is current, the history is a
    single chain, and the context has the current values and none of the others."""
    go = run.home / "go"
    writes = rng.randint(6, 12)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(run.home), f"{run.name}{p}", str(go), str(writes)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for p in "PQ"]
    go.touch()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    run.probe.expect(all(p.returncode == 0 for p in procs), f"a writer failed: {errors}")
    run.restart()
    block = run.store.current_view("repo-a", "s1", budget_tokens=100_000)
    for k in range(3):
        history = run.store.history(f"conc key {k}", "repo-a")
        active = [i for i in history if i.status == "active"]
        run.probe.expect(len(history) == 2 * len(range(k, writes, 3)), f"key {k}: {len(history)} values written")
        run.probe.expect(len(active) == 1, f"key {k}: {len(active)} active values")
        run.probe.expect(all(a.superseded_by == b.id for a, b in zip(history, history[1:])), f"key {k}: chain broken")
        run.probe.expect(active[0].text in block.text, f"key {k}: current value missing from context")
        stale = [i.text.split()[-1] for i in history if i.status != "active"]
        run.probe.superseded_in_context += sum(s in block.text for s in stale)
        run.probe.expect(not any(s in block.text for s in stale), f"key {k}: superseded value in context")
    notes = [i for i in run.store.list("repo-a", None) if i.key is None]
    run.probe.expect(len(notes) == 2 * writes, f"{len(notes)} of {2 * writes} notes kept")


def run_suite(scenarios: int, seed: int) -> dict:
    rng = random.Random(seed)
    names = list(FAMILIES)
    plan = [names[_family_index(i, scenarios)] for i in range(scenarios)]
    results: list[dict] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dsv4-consistency-") as tmp:
        for n, family in enumerate(plan):
            run = Run(Path(tmp) / f"s{n}", f"{n}")
            globals()[family](run, random.Random(rng.random()))
            run.store.close()
            results.append({"scenario": n, "family": family, "writes_elsewhere": run.writes_elsewhere,
                            **run.probe.summary()})
    failed = [r for r in results if r["failures"]]
    by_family = Counter(r["family"] for r in results)
    return {
        "scenarios": len(results), "passed": len(results) - len(failed),
        "correct_pct": round(100.0 * (len(results) - len(failed)) / len(results), 2),
        "probes": sum(r["probes"] for r in results),
        "superseded_values_in_context": sum(r["superseded_in_context"] for r in results),
        "writes_from_other_processes": sum(r["writes_elsewhere"] for r in results),
        "by_family": {f: {"scenarios": c, "passed": sum(1 for r in results if r["family"] == f and not r["failures"])}
                      for f, c in by_family.items()},
        "failures": [{"scenario": r["scenario"], "family": r["family"], "first": r["failures"][:3]} for r in failed][:20],
        "seconds": round(time.perf_counter() - started, 1), "seed": seed,
    }


def _family_index(i: int, total: int) -> int:
    """Scenario i's family: the families take consecutive shares of the plan in FAMILIES' proportions."""
    edge = 0.0
    for index, share in enumerate(FAMILIES.values()):
        edge += share
        if i < round(edge * total):
            return index
    return len(FAMILIES) - 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=210)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = run_suite(args.scenarios, args.seed)
    print(f"{'family':<18} {'scenarios':>9} {'passed':>7}")
    for family, row in report["by_family"].items():
        print(f"{family:<18} {row['scenarios']:>9} {row['passed']:>7}")
    print(f"total: {report['passed']}/{report['scenarios']} scenarios correct ({report['correct_pct']} %), "
          f"{report['probes']} probes, {report['superseded_values_in_context']} superseded values in any context, "
          f"{report['writes_from_other_processes']} overrides written by another process, "
          f"{report['seconds']} s")
    for failure in report["failures"]:
        print("FAIL", json.dumps(failure))
    if args.out:
        from datetime import datetime, timezone
        import platform

        report.update(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=platform.platform(),
                      python=platform.python_version())
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["passed"] == report["scenarios"] and report["superseded_values_in_context"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
