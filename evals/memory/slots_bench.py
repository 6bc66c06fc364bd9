"""Precision and recall of "same subject" for the slot rule, and the calibration of its similarity threshold.

    .venv/bin/python evals/memory/slots_bench.py [--out evals/results/memory_slots.json]

Data: the labelled pairs of evals/memory/data/slot_pairs.json (evals/memory/slot_pairs.py, fixed seed).
A pair is predicted "same subject" when rule 1 holds (memory/slots.py gives both statements the same slot)
or rule 2 does (both slots had a value removed and the cosine similarity of the two slot strings is at least
the threshold). The threshold is chosen on the even-numbered pairs (calibration half: best F1 among the
thresholds with precision >= 0.98) and reported on the odd-numbered ones (held-out half) and on all pairs,
for the real embedder (all-MiniLM-L6-v2) and the hashing one. For comparison: the similarity of the whole
statements (no slot), at its best-F1 threshold on the calibration half. memory/slot_match.py's THRESHOLDS
hold the chosen values.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dsv4.memory import HashingEmbedder
from dsv4.memory.slot_match import THRESHOLDS
from dsv4.memory.slots import subject

DATA = Path(__file__).resolve().parent / "data" / "slot_pairs.json"
MIN_PRECISION = 0.98


def scores(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4), "tp": tp, "fp": fp,
            "fn": fn}


def evaluate(rows: list[dict], threshold: float | None, field: str = "slot_similarity", rule1: bool = True) -> dict:
    tp = fp = fn = 0
    for row in rows:
        similar = threshold is not None and row[field] is not None and row[field] >= threshold
        predicted = (rule1 and row["rule1"]) or similar
        tp += predicted and row["same"]
        fp += predicted and not row["same"]
        fn += (not predicted) and row["same"]
    return scores(tp, fp, fn)


def choose(rows: list[dict], field: str, rule1: bool, min_precision: float | None) -> float:
    grid = sorted({round(float(t), 3) for t in np.arange(0.30, 1.0001, 0.01)})
    best, best_key = 1.0, (-1.0, -1.0)
    for t in grid:
        s = evaluate(rows, t, field, rule1)
        if min_precision is not None and s["precision"] < min_precision:
            continue
        key = (s["f1"], t)  # ties: the higher (stricter) threshold
        if key > best_key:
            best, best_key = t, key
    return best


def measure(pairs: list[dict], embedder) -> list[dict]:
    subjects = [(subject(p["a"]), subject(p["b"])) for p in pairs]
    slot_texts = sorted({s.slot for pair in subjects for s in pair if s is not None})
    slot_vectors = dict(zip(slot_texts, embedder.embed(slot_texts)))
    statement_vectors = embedder.embed([t for p in pairs for t in (p["a"], p["b"])])
    rows = []
    for n, (pair, (sa, sb)) in enumerate(zip(pairs, subjects)):
        rule1 = sa is not None and sb is not None and sa.slot == sb.slot
        valued = sa is not None and sb is not None and sa.valued and sb.valued and not rule1
        rows.append({**pair, "slot_a": sa.slot if sa else None, "slot_b": sb.slot if sb else None, "rule1": rule1,
                     "slot_similarity": float(np.dot(slot_vectors[sa.slot], slot_vectors[sb.slot])) if valued else None,
                     "text_similarity": float(np.dot(statement_vectors[2 * n], statement_vectors[2 * n + 1]))})
    return rows


def run(pairs: list[dict], embedder) -> dict:
    rows = measure(pairs, embedder)
    calibration, held_out = rows[0::2], rows[1::2]
    threshold = choose(calibration, "slot_similarity", True, MIN_PRECISION)
    text_threshold = choose(calibration, "text_similarity", False, None)
    errors = [{k: r[k] for k in ("a", "b", "same", "slot_a", "slot_b", "slot_similarity")} for r in rows
              if ((r["rule1"] or (r["slot_similarity"] or 0) >= threshold) != r["same"])]
    return {
        "embedder": embedder.model_id, "threshold": threshold, "threshold_in_use": THRESHOLDS.get(embedder.model_id),
        "rule1_only": {"all": evaluate(rows, None), "held_out": evaluate(held_out, None)},
        "rule1_and_2": {"calibration": evaluate(calibration, threshold), "held_out": evaluate(held_out, threshold),
                        "all": evaluate(rows, threshold)},
        "statement_similarity_only": {"threshold": text_threshold,
                                      "held_out": evaluate(held_out, text_threshold, "text_similarity", False)},
        "errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    pairs = json.loads(DATA.read_text())["pairs"]
    embedders = [HashingEmbedder()]
    try:
        from dsv4.memory.embed import MiniLMEmbedder

        embedders.insert(0, MiniLMEmbedder())
    except ImportError as exc:
        print(f"note: all-MiniLM-L6-v2 unavailable ({exc}); hashing embedder only", file=sys.stderr)
    same = sum(p["same"] for p in pairs)
    print(f"{len(pairs)} labelled pairs: {same} same subject, {len(pairs) - same} different")
    print(f"{'embedder':<18} {'rule':<28} {'threshold':>9} {'precision':>9} {'recall':>7} {'F1':>6}")
    reports = []
    for embedder in embedders:
        r = run(pairs, embedder)
        reports.append(r)
        lines = [("rule 1 only (all pairs)", "-", r["rule1_only"]["all"]),
                 ("rules 1+2 (held-out half)", r["threshold"], r["rule1_and_2"]["held_out"]),
                 ("rules 1+2 (all pairs)", r["threshold"], r["rule1_and_2"]["all"]),
                 ("statement sim. (held-out)", r["statement_similarity_only"]["threshold"],
                  r["statement_similarity_only"]["held_out"])]
        for name, t, s in lines:
            print(f"{r['embedder']:<18} {name:<28} {t!s:>9} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>6.3f}")
        if r["threshold_in_use"] != r["threshold"]:
            print(f"note: memory/slot_match.py uses {r['threshold_in_use']} for {r['embedder']}; calibrated {r['threshold']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                        "machine": platform.platform(), "pairs": len(pairs), "same": same,
                                        "min_precision": MIN_PRECISION, "embedders": reports}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
