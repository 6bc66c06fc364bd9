"""The packed-weight cache: a second load maps what the first one packed, and a bad cache file is rebuilt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dsv4.runtime.engine.loader import load_model  # noqa: E402
from dsv4.runtime.loaders import packed_cache  # noqa: E402


def _logits(loaded, ids: list[int]) -> torch.Tensor:
    from dsv4.runtime.engine.engine import LlamaEngine

    return LlamaEngine(loaded, context_window=256, threads=2).prefill(ids)


def test_second_load_maps_the_packed_weights_and_a_corrupt_file_is_rebuilt(smollm_path: Path, dsv4_home: Path):
    cold = load_model(smollm_path, precision="int8")
    files = list((dsv4_home / "cache" / "packed").glob("*.pt"))
    assert len(files) == 1
    ids = cold.tokenizer.encode("def add(a, b):\n    return")
    expected = _logits(cold, ids)

    warm = load_model(smollm_path, precision="int8")
    assert cold.weights_from_cache is None and warm.weights_from_cache == files[0]  # mapped, not repacked
    assert torch.equal(_logits(warm, ids), expected)

    with files[0].open("r+b") as fh:  # cut off mid-write by a crash, say
        fh.truncate(files[0].stat().st_size // 3)
    rebuilt = load_model(smollm_path, precision="int8")
    assert rebuilt.weights_from_cache is None
    assert torch.equal(_logits(rebuilt, ids), expected)
    assert files[0].stat().st_size > 0 and packed_cache.load_packed(files[0]) is not None


def test_file_digest_is_remembered_per_file_version(tmp_path: Path):
    root = tmp_path / "cache"
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 100)
    first = packed_cache.file_digest(model, root)
    assert packed_cache.file_digest(model, root) == first and len(list((root / "digests").iterdir())) == 1
    model.write_bytes(b"GGUF" + b"\1" * 100)
    os.utime(model, ns=(1, 1))  # a new version: different mtime, so the digest is computed again
    assert packed_cache.file_digest(model, root) != first
    memo = next((root / "digests").iterdir())
    memo.write_text("{not json")  # an unreadable memo is recomputed, not trusted
    assert packed_cache.file_digest(model, root) in {first, packed_cache.file_digest(model, root)}


def test_an_unwritable_cache_folder_does_not_fail_the_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").write_text("a file where the cache folder should be")
    monkeypatch.setenv("DSV4_HOME", str(home))
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 100)
    target = packed_cache.cached_file_for(model, "p")  # the digest is computed, just not remembered
    assert target is not None and packed_cache.load_packed(target) is None
    assert not packed_cache.save_packed(target, {"w": torch.zeros(2)})
