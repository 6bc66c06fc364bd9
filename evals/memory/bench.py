"""Engram at scale: 10k items, the real embedder (all-MiniLM-L6-v2, numpy forward pass).

    .venv/bin/python evals/memory/bench.py [--items 10000] [--queries 200] [--embedder minilm|hashing]

Measures `remember` throughput (SQLite write; the index catches up on the next search), the index build
(embedding every item and adding it to LanceDB), recall latency p50/p95 (warm: model loaded, index in step;
model load excluded and reported apart), a remember-then-recall round trip (one pending item embedded and
indexed inside the recall), the context block and forget at 10k. References measured in the same run: a
bare SQLite insert loop, an FTS5 query alone, one query embedding alone and a numpy brute-force top-k.
Writes evals/results/memory_bench.json. Target: recall p50 < 30 ms with the real embedder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from dsv4.memory import HashingEmbedder, MemoryStore, MiniLMEmbedder

ROOT = Path(__file__).resolve().parents[2]
REPO = "bench-repo"
SUBJECTS = ["the parser", "the CLI", "database migrations", "the test suite", "logging", "the deploy script",
            "error messages", "the cache layer", "API handlers", "the build", "type hints", "docstrings",
            "commit messages", "the config loader", "the retry policy", "the web UI", "background jobs"]
VERBS = ["should use", "must avoid", "prefers", "was changed to use", "depends on", "is tested with",
         "runs under", "is documented in", "needs", "was decided to keep"]
OBJECTS = ["pytest fixtures", "structured JSON", "four-space indentation", "snake_case names", "the retry helper",
           "SQLite WAL mode", "exponential backoff", "a 100-column limit", "f-strings", "dataclasses",
           "the staging cluster", "a feature flag", "the v2 endpoint", "tabs", "black formatting", "uv"]


def sentence(rng: random.Random, n: int) -> str:
    return (f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
            f"(note {n}, ticket {rng.randint(100, 9999)}).")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embedder", choices=["minilm", "hashing"], default="minilm")
    parser.add_argument("--out", type=Path, default=ROOT / "evals" / "results" / "memory_bench.json")
    args = parser.parse_args()
    rng = random.Random(5)
    texts = [sentence(rng, n) for n in range(args.items)]
    keys = [f"setting {n % 500}" if n % 5 == 0 else None for n in range(args.items)]
    queries = [f"what {rng.choice(VERBS).split()[-1]} {rng.choice(SUBJECTS)} {rng.choice(OBJECTS)}"
               for _ in range(args.queries + 1)]
    # The machine is shared; the load average says how much of it this run had.
    result: dict = {"items": args.items, "queries": args.queries, "embedder": args.embedder,
                    "load_avg_1m_start": round(os.getloadavg()[0], 2)}

    started = time.perf_counter()
    model = MiniLMEmbedder() if args.embedder == "minilm" else HashingEmbedder()
    result["model_load_s"] = round(time.perf_counter() - started, 3)

    with tempfile.TemporaryDirectory(prefix="dsv4-bench-") as tmp:
        home = Path(tmp)
        store = MemoryStore.open(home, embedder=model)
        started = time.perf_counter()
        for text, key in zip(texts, keys):
            store.remember(text, key=key, repo_id=REPO)
        elapsed = time.perf_counter() - started
        result["remember_per_s"] = round(args.items / elapsed, 1)
        result["active_items"] = len(store.list(REPO))

        ref = sqlite3.connect(home / "reference.db", isolation_level=None)
        ref.execute("PRAGMA journal_mode=WAL")
        ref.execute("PRAGMA synchronous=NORMAL")
        ref.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, text TEXT)")
        started = time.perf_counter()
        for text in texts:
            ref.execute("INSERT INTO t (text) VALUES (?)", [text])  # one autocommit transaction per row, like remember
        result["reference_sqlite_insert_per_s"] = round(args.items / (time.perf_counter() - started), 1)

        started = time.perf_counter()
        store.recall(queries[0], repo_id=REPO)  # embeds and indexes every active item
        result["index_build_s"] = round(time.perf_counter() - started, 2)

        latencies = []
        for query in queries[1:]:
            started = time.perf_counter()
            hits = store.recall(query, repo_id=REPO, k=8)
            latencies.append(time.perf_counter() - started)
            assert hits.note == "" and hits.hits
        result["recall_ms"] = {"p50": ms(pct(latencies, 0.5)), "p95": ms(pct(latencies, 0.95)),
                               "max": ms(max(latencies))}

        round_trips = []
        for n in range(20):
            started = time.perf_counter()
            store.remember(f"Fresh decision {n}: keep the retry helper.", repo_id=REPO)
            store.recall("retry helper decision", repo_id=REPO)
            round_trips.append(time.perf_counter() - started)
        result["remember_then_recall_ms_p50"] = ms(statistics.median(round_trips))

        views = []
        for _ in range(20):
            started = time.perf_counter()
            store.current_view(REPO, None)
            views.append(time.perf_counter() - started)
        result["context_block_ms_p50"] = ms(statistics.median(views))

        forgets = []
        for item in store.list(REPO)[:10]:
            started = time.perf_counter()
            store.forget(item.id)
            forgets.append(time.perf_counter() - started)
        result["forget_ms"] = {"p50": ms(statistics.median(forgets)), "max": ms(max(forgets))}
        result["disk_mb"] = round(sum(p.stat().st_size for p in (home / "memory").rglob("*") if p.is_file()) / 2**20, 1)

        import numpy as np

        embed_times = []
        for query in queries[1:51]:
            started = time.perf_counter()
            vector = model.embed([query])[0]
            embed_times.append(time.perf_counter() - started)
        result["reference_query_embedding_ms_p50"] = ms(statistics.median(embed_times))
        matrix = model.embed(texts[:2000])
        matrix = np.concatenate([matrix] * (args.items // 2000 or 1))
        brute = []
        for _ in range(50):
            started = time.perf_counter()
            np.argpartition(-(matrix @ vector), 8)[:8]
            brute.append(time.perf_counter() - started)
        result["reference_numpy_topk_ms_p50"] = ms(statistics.median(brute))
        fts = []
        for query in queries[1:51]:
            match = " OR ".join(f'"{w}"' for w in query.lower().split())
            started = time.perf_counter()
            store.rows("SELECT rowid FROM items_fts WHERE items_fts MATCH ? ORDER BY bm25(items_fts) LIMIT 32", [match])
            fts.append(time.perf_counter() - started)
        result["reference_fts_query_ms_p50"] = ms(statistics.median(fts))
        store.close()

    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    result.update(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=platform.platform(),
                  python=platform.python_version(), cpus=os.cpu_count())
    for name, value in result.items():
        print(f"{name:<36} {value}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
