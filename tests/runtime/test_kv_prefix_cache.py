"""The engine-side reuse hook on the real SmolLM2 engine with the real snapshot store: a later session's
prefill restores the saved prefix inside prefill and computes only the rest, with the same logits as the
engine that never lost its cache; a corrupt file is refused with a reason and the prefix is re-read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsv4.memory import HashingEmbedder, MemoryStore, snapshots
from dsv4.memory.kv_store import SnapshotStore, TierCaps
from dsv4.runtime.kv.prefix_cache import Provenance


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def kv_store(dsv4_home: Path):
    memory = MemoryStore.open(dsv4_home, embedder=HashingEmbedder())
    yield SnapshotStore(memory)
    memory.close()


@pytest.mark.parametrize("tier", ["disk-hot", "disk-cold", "ram-warm"])
def test_next_session_restores_the_saved_prefix(fast_engine, kv_store, perplexity_text, dsv4_home, tier):
    engine = fast_engine
    kv_store.disk_tier = "cold" if tier == "disk-cold" else "hot"
    if tier == "ram-warm":
        kv_store.caps = TierCaps(hot_ram=0)  # the hot RAM copy is demoted to int8 at once
    ids = engine.tokenizer.encode(perplexity_text * 3)[:300]
    system = ids[:200]
    engine.attach_prefix_cache(kv_store)
    try:
        engine.reset()
        engine.prefill(system)
        snap_id = engine.save_prefix(200, Provenance(turns=[("s1", 1, 1)]))
        assert [s.id for s in snapshots.all_snapshots(kv_store.memory)] == [snap_id]
        never_evicted = engine.prefill(ids).clone()  # its own 200 tokens, then the other 100

        engine.reset()  # a new session: the engine's cache is empty, the store has the prefix
        if tier != "ram-warm":
            kv_store.ram.clear()  # ... and so is this process's RAM tier: it comes from disk
        before = engine.stats.prefilled_tokens
        restored = engine.prefill(ids)
        report = engine.kv_report
        assert (report.restored_tokens, report.tier, report.prefill_tokens) == (200, tier, 100)
        assert report.restore_s > 0 and report.refused == []
        assert engine.stats.prefilled_tokens - before == 100
        engine.reset()
        engine.attach_prefix_cache(None)
        cold_start = engine.prefill(ids)
        assert int(restored.argmax()) == int(cold_start.argmax())
        if tier == "disk-hot":
            assert torch.equal(restored, never_evicted)  # lossless: bit for bit
            assert (restored.float() - cold_start.float()).abs().max() < 0.5  # chunking differs from a cold start
        else:  # int8 / int4 K/V: close, and the same greedy choice (measured: 1.5% / 3.5% of the peak logit)
            bound = 0.05 if tier == "ram-warm" else 0.15
            assert (restored.float() - never_evicted.float()).abs().max() < bound * never_evicted.float().abs().max()
    finally:
        engine.attach_prefix_cache(None)


def test_a_corrupt_snapshot_is_refused_and_the_prefix_re_read(fast_engine, kv_store, perplexity_text, dsv4_home):
    engine = fast_engine
    ids = engine.tokenizer.encode(perplexity_text * 3)[:150]
    engine.attach_prefix_cache(kv_store)
    try:
        engine.reset()
        engine.prefill(ids[:100])
        engine.save_prefix(100)
        path = dsv4_home / snapshots.all_snapshots(kv_store.memory)[0].path
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x10
        path.write_bytes(data)
        engine.reset()
        kv_store.ram.clear()
        engine.prefill(ids)
        report = engine.kv_report
        assert report.restored_tokens == 0 and report.prefill_tokens == 150
        assert len(report.refused) == 1 and "checksum" in report.refused[0]
        assert snapshots.all_snapshots(kv_store.memory) == [] and not path.exists()
    finally:
        engine.attach_prefix_cache(None)
