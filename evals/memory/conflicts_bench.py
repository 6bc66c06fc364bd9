"""A FactConsolidation-style conflict set: chains of facts and preferences overridden, in paraphrase, across
sessions; the share of chains where only the newest value reaches the model.

    .venv/bin/python evals/memory/conflicts_bench.py [--chains 520] [--seed 16] [--out evals/results/memory_conflicts.json]

Each chain is one subject given 2-5 values one after another, each value in a new session (a new session id
and a reopened store, i.e. a later `dsv4-code` run), each time in another phrasing. Chains share stores
(eight subjects to a store, their steps interleaved), so a rule that merges two different subjects fails
the chain that loses its value. Kinds of chain:

- captured preference: a user message ("From now on, ...") through `MemoryStore.capture`, no key;
- remembered preference: `remember(text, kind="preference")`, no key (the remember tool without a key);
- keyed fact / keyed preference: `remember(text, key=K)` with a paraphrased text each time.

After the last step (store reopened once more) the chain passes when the memory block the model reads
(`current_view(...).text`, what `dsv4-code memory context` prints) holds the newest value and none of the
older ones. Values are distinct strings, none a part of another (within a store), matched as whole words. Targets: >= 95 % for paraphrased
(unkeyed) overrides, 100 % for keyed ones. Peers on MemoryAgentBench FactConsolidation (single-hop, answer
accuracy with a gpt-4o-mini reader, so not the same measurement): Mem0 18 %, Zep 7 %, MemGPT 28 %,
HippoRAG-v2 54 %. The phrasings here are new ones, written apart from the calibration pairs of
slots_bench.py (the subjects overlap).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from dsv4.memory import HashingEmbedder, MemoryStore

REPO = "repo-conflicts"
PREFERENCES: dict[str, tuple[list[str], list[str]]] = {
    "test runner": (["run the tests with {v}", "run the test suite using {v}", "use {v} for running tests",
                     "the tests should be run with {v}", "our test command is {v}"],
                    ["pytest -x", "nox -s tests", "tox -p", "make check", "hatch test"]),
    "formatter": (["format the code with {v}", "use {v} to format the code", "the formatter is {v}",
                   "format files using {v}"], ["black", "ruff format", "yapf", "autopep8"]),
    "indentation": (["indent with {v}", "use {v} for indentation", "indentation is {v}"],
                    ["tabs", "2 spaces", "4 spaces", "8 spaces"]),
    "reply language": (["answer in {v}", "reply in {v}", "respond to me in {v}", "talk to me in {v}"],
                       ["English", "German", "French", "Italian", "Dutch"]),
    "commit messages": (["write commit messages in {v}", "commit messages should be in {v}",
                         "use {v} for commit messages"], ["Swedish", "Polish", "Turkish", "Korean"]),
    "package manager": (["install packages with {v}", "use {v} as the package manager", "manage dependencies using {v}",
                         "use {v} to install dependencies"], ["pnpm", "yarn", "bun", "poetry", "uv"]),
    "line length": (["keep lines under {v} characters", "the maximum line length is {v}",
                     "limit lines to {v} characters"], ["79", "99", "120", "140"]),
    "quote style": (["use {v} quotes", "prefer {v} quotes for strings"], ["single", "double"]),
    "log level": (["set the log level to {v}", "use {v} as the log level", "log at {v} level"],
                  ["DEBUG", "INFO", "WARNING", "CRITICAL"]),
    "python version": (["target Python {v}", "write code for Python {v}", "the minimum Python version is {v}"],
                       ["3.10", "3.11", "3.12", "3.13"]),
    "linter": (["lint with {v}", "use {v} for linting", "the linter is {v}"], ["flake8", "pylint", "ruff check"]),
    "type checker": (["type-check with {v}", "use {v} for type checking", "the type checker is {v}"],
                     ["mypy", "pyright", "pytype"]),
    "naming": (["use {v} for variable names", "name variables in {v}", "variables should be {v}"],
               ["snake_case", "camelCase", "PascalCase"]),
    "commit style": (["always squash commits before merging", "never squash commits before merging"], ["", ""]),
}
FACTS: dict[str, tuple[list[str], list[str]]] = {
    "staging host": (["The staging host is {v}.", "Staging now runs on {v}.", "{v} is the staging server."],
                     ["stg-alpha.example", "stg-bravo.example", "stg-charlie.example", "stg-delta.example"]),
    "database port": (["The database listens on port {v}.", "Postgres is on port {v}.", "Use port {v} for the DB."],
                      ["5432", "6543", "7777", "16000"]),
    "release manager": (["{v} manages releases.", "The release manager is {v}.", "Ask {v} about releases."],
                        ["Alice Moreau", "Bongani Dube", "Chen Wei", "Dana Kowalski"]),
    "default branch": (["The default branch is {v}.", "Work is merged into {v}.", "{v} is the main line."],
                       ["trunk", "mainline", "develop", "integration"]),
    "api base url": (["The API lives at {v}.", "Call the API at {v}.", "API base URL: {v}."],
                     ["https://api-v1.example.com", "https://api-v2.example.com", "https://edge.example.net/api"]),
    "build command": (["Build with {v}.", "The build command is {v}.", "To build, run {v}."],
                      ["make all", "ninja -C out", "cargo build --release", "bazel build //..."]),
}
FRAMES = ["From now on, {s}.", "Going forward, {s}.", "Please {s} from now on.", "From now on, always {s}.",
          "OK, in the future {s}.", "Actually, from now on {s}!"]
KINDS = ("captured preference", "remembered preference", "keyed fact", "keyed preference")
PER_STORE = 8


def _chain(rng: random.Random, kind: str, subject: str) -> dict:
    table = FACTS if kind == "keyed fact" else PREFERENCES
    phrasings, values = table[subject]
    if subject == "commit style":  # the value is the polarity: "always" / "never" alternate
        length = rng.randint(2, 5)
        first = rng.randrange(2)
        texts = [phrasings[(first + n) % 2] for n in range(length)]
        return {"kind": kind, "subject": subject, "texts": texts, "values": [t.split()[0] for t in texts],
                "key": subject if kind == "keyed preference" else None}
    length = rng.randint(2, min(5, len(values)))
    chosen = rng.sample(values, length)
    texts, last = [], None
    for value in chosen:
        phrasing = rng.choice([p for p in phrasings if p != last] or phrasings)  # a paraphrase each time
        last = phrasing
        texts.append(phrasing.format(v=value))
    return {"kind": kind, "subject": subject, "texts": texts, "values": chosen,
            "key": subject if kind.startswith("keyed") else None}


def generate(chains: int, seed: int) -> list[list[dict]]:
    """Stores of PER_STORE chains each, distinct subjects within a store."""
    rng = random.Random(seed)
    stores: list[list[dict]] = []
    while sum(len(s) for s in stores) < chains:
        kind = KINDS[len(stores) % len(KINDS)]
        names = sorted(FACTS if kind == "keyed fact" else PREFERENCES)
        picked = rng.sample(names, min(PER_STORE, len(names)))
        stores.append([_chain(rng, kind, name) for name in picked])
    return stores


def _write(store: MemoryStore, chain: dict, step: int, session: str, rng: random.Random) -> None:
    text = chain["texts"][step]
    if chain["kind"] == "captured preference":
        message = rng.choice(FRAMES).format(s=text)
        if chain["subject"] == "commit style":
            message = "OK, " + text + "."
        if not store.capture(message, repo_id=REPO, session_id=session):
            raise AssertionError(f"nothing captured from {message!r}")
    elif chain["kind"] == "keyed fact":
        store.remember(text, key=chain["key"], kind="fact", repo_id=REPO, session_id=session)
    else:
        store.remember(text[0].upper() + text[1:] + ".", key=chain["key"], kind="preference", repo_id=REPO,
                       session_id=session)


def judge(block: str, chain: dict) -> str:
    """"" when only the newest value is in the block, else what is wrong."""
    # Item ids ("[m-79ab...]") are not content: a value such as "79" must not be found in them.
    lower = re.sub(r"\[m-[0-9a-f]+\]", "", block).lower()
    newest, older = chain["values"][-1], chain["values"][:-1]
    if chain["subject"] == "commit style":
        present = [w for w in ("always squash", "never squash") if w in lower]
        wanted = f"{newest.lower()} squash"
        return "" if present == [wanted] else f"block has {present}, wants {wanted!r}"
    stale = [v for v in older if _holds(lower, v) and v != newest]
    if not _holds(lower, newest):
        return f"newest value {newest!r} missing" + (f"; stale {stale}" if stale else "")
    return f"stale values {stale}" if stale else ""


def _holds(block: str, value: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(value.lower())}(?![\w])", block) is not None


def run_store(home: Path, chains: list[dict], embedder, rng: random.Random) -> list[dict]:
    steps = max(len(c["texts"]) for c in chains)
    for step in range(steps):
        store = MemoryStore.open(home, embedder=embedder)  # a new session: a reopened store, a new session id
        session = f"s{step}"
        order = [c for c in chains if step < len(c["texts"])]
        rng.shuffle(order)
        for chain in order:
            _write(store, chain, step, session, rng)
        store.close()
    store = MemoryStore.open(home, embedder=embedder)
    block = store.current_view(REPO, f"s{steps}", budget_tokens=100_000).text
    store.close()
    return [{"kind": c["kind"], "subject": c["subject"], "length": len(c["values"]), "problem": judge(block, c),
             "texts": c["texts"]} for c in chains]


def shares(rows: list[dict], passed: Callable[[dict], bool]) -> dict:
    """The share of chains that pass, by kind, paraphrased (unkeyed) and keyed."""
    by_kind = {}
    for kind in KINDS:
        kept = [r for r in rows if r["kind"] == kind]
        count = sum(1 for r in kept if passed(r))
        by_kind[kind] = {"chains": len(kept), "passed": count, "share": round(count / len(kept), 4) if kept else None}
    paraphrased = [r for r in rows if not r["kind"].startswith("keyed")]
    keyed = [r for r in rows if r["kind"].startswith("keyed")]
    return {"paraphrased_share": round(sum(map(passed, paraphrased)) / len(paraphrased), 4) if paraphrased else None,
            "keyed_share": round(sum(map(passed, keyed)) / len(keyed), 4) if keyed else None, "by_kind": by_kind}


def run(chains: int = 520, seed: int = 16, embedder=None) -> dict:
    embedder = embedder or HashingEmbedder()
    rng = random.Random(seed + 1)
    started = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="dsv4-conflicts-") as tmp:
        for n, group in enumerate(generate(chains, seed)):
            rows += run_store(Path(tmp) / f"home{n}", group, embedder, rng)
    return {"embedder": embedder.model_id, "chains": len(rows), "seed": seed,
            "overrides": sum(r["length"] - 1 for r in rows), **shares(rows, lambda r: not r["problem"]),
            "failures_by_subject": dict(Counter(r["subject"] for r in rows if r["problem"])),
            "failures": [r for r in rows if r["problem"]], "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=520)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--hashing", action="store_true", help="the hashing embedder instead of all-MiniLM-L6-v2")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.hashing:
        embedder = HashingEmbedder()
    else:
        from dsv4.memory import MiniLMEmbedder

        embedder = MiniLMEmbedder()
    report = run(args.chains, args.seed, embedder)
    print(f"{report['chains']} chains, {report['overrides']} overrides, embedder {report['embedder']}, "
          f"{report['seconds']} s")
    print(f"{'kind':<24} {'chains':>6} {'only newest':>11} {'share':>7}")
    for kind, s in report["by_kind"].items():
        print(f"{kind:<24} {s['chains']:>6} {s['passed']:>11} {s['share']:>7.1%}")
    print(f"paraphrased (unkeyed): {report['paraphrased_share']:.1%} (target >= 95 %); keyed: "
          f"{report['keyed_share']:.1%} (target 100 %). Peers (FactConsolidation): Mem0 18 %, Zep 7 %, MemGPT 28 %, "
          "HippoRAG-v2 54 %")
    for failure in report["failures"][:12]:
        print(f"  {failure['kind']}: {failure['subject']}: {failure['problem']}  <- {failure['texts']}")
    if args.out:
        report.update(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=platform.platform())
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    ok = report["paraphrased_share"] >= 0.95 and report["keyed_share"] == 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
