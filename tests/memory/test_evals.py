"""The memory evals (evals/memory/) as tests, so CI checks them: a subset by default, everything with --slow."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

EVALS = Path(__file__).resolve().parents[2] / "evals" / "memory"


def _suite(name: str):
    sys.path.insert(0, str(EVALS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EVALS))


def test_consistency_subset_is_fully_correct() -> None:
    report = _suite("consistency").run_suite(scenarios=42, seed=11)
    assert report["failures"] == [] and report["passed"] == 42
    assert report["superseded_values_in_context"] == 0
    assert set(report["by_family"]) == {"override_chain", "scope_precedence", "supersede_forget", "pin_budget",
                                        "concurrent"}


def test_forget_completeness_leaves_no_trace() -> None:
    report = _suite("forget_completeness").run_suite(fillers=(0, 600))
    assert report["traces"] == 0, [r["traces"] for r in report["rows"] if r["traces"]]


def test_conflict_chains_subset_only_the_newest_value_reaches_the_model() -> None:
    from dsv4.memory import HashingEmbedder

    report = _suite("conflicts_bench").run(chains=64, seed=5, embedder=HashingEmbedder())
    assert report["chains"] >= 64 and set(report["by_kind"]) == {"captured preference", "remembered preference",
                                                                 "keyed fact", "keyed preference"}
    assert report["keyed_share"] == 1.0 and report["paraphrased_share"] >= 0.95, report["failures"][:5]


def test_slot_rule_precision_on_the_labelled_pairs() -> None:
    import json

    from dsv4.memory import HashingEmbedder

    bench = _suite("slots_bench")
    pairs = json.loads(bench.DATA.read_text())["pairs"]
    assert len(pairs) >= 300 and _suite("slot_pairs").generate() == pairs  # the committed set is the generator's
    report = bench.run(pairs, HashingEmbedder())
    assert report["threshold"] == report["threshold_in_use"]  # slot_match.py holds the calibrated value
    assert report["rule1_and_2"]["all"]["precision"] >= 0.98 and report["rule1_and_2"]["all"]["recall"] >= 0.6


@pytest.mark.slow
def test_full_consistency_suite() -> None:
    report = _suite("consistency").run_suite(scenarios=210, seed=7)
    assert report["passed"] == report["scenarios"] == 210 and report["superseded_values_in_context"] == 0


@pytest.mark.slow  # about 30 s: eighteen dsv4-code processes
def test_session_scenarios_keep_both_promises() -> None:
    report = _suite("session_scenarios").run_suite()
    failed = [c for r in report["rows"] for c in r["checks"] if not c["ok"]]
    assert failed == [] and report["traces"] == 0 and report["scans"] == 4
