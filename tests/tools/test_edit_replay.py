"""A small slice of the gold-replay benchmark, so CI checks the edit engine end to end on real exercises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "benchmarks" / "polyglot"


@pytest.mark.skipif(not DATA.is_dir(), reason="needs shared/benchmarks/polyglot beside the repository")
def test_gold_replay_slice_applies_everything_and_never_applies_wrongly(tmp_path):
    out = tmp_path / "replay.json"
    run = subprocess.run([sys.executable, str(REPO / "evals" / "edit_replay.py"), "--limit", "3", "--out", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    totals = report["totals"]
    assert totals["wrong"] == 0 and totals["refused"] == 0
    assert totals["clean_correct_rate"] == 1.0 and totals["perturbed_correct_rate"] >= 0.95
    assert report["exercises"] == {"python": 3, "javascript": 3}
    # The perturbations really exercise the relaxed stages, not only exact matching.
    used = report["stages_used_first_try"]
    assert used["indent_shift"].get("indentation") and used["tabs"].get("whitespace")
    assert used["trailing_ws"].get("trailing_whitespace") and used["elided"].get("elision")
