"""Engram KV on the real SmolLM2 engine: export -> a NaN-filled cache -> import gives back the live cache bit
for bit, and greedy logits equal the never-evicted run (the engine that kept its own cache)."""

from __future__ import annotations

import pytest
import torch

from dsv4.runtime.kv.codec import EncodedSnapshot
from dsv4.runtime.kv.file import read_snapshot, write_snapshot
from dsv4.runtime.kv.snapshot import SnapshotRefused


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _ids(engine, text: str, n: int) -> list[int]:
    ids = engine.tokenizer.encode(text * (1 + n // 50))[:n]
    assert len(ids) == n
    return ids


def _greedy(engine, ids: list[int], steps: int) -> list[torch.Tensor]:
    """Logits of the prefill and of `steps` greedy decode steps."""
    out = [engine.prefill(ids).clone()]
    for _ in range(steps):
        out.append(engine.decode(int(out[-1].argmax())).clone())
    return out


def _restore_equals_live(engine, ids: list[int], cut: int, steps: int = 3, through_file=None) -> None:
    engine.reset()
    engine.prefill(ids[:cut])
    live_block = engine.kv.block[:, :, :, :cut].clone()
    snap = engine.export_prefix(cut)
    assert snap.tensors["kv"].is_contiguous() and snap.tensors["kv"].untyped_storage().nbytes() == snap.nbytes()
    want = _greedy(engine, ids, steps)  # never evicted: reuses its own first `cut` tokens
    if through_file is not None:
        write_snapshot(through_file, EncodedSnapshot(snap, "hot"))
        snap = read_snapshot(through_file).decode()

    engine.kv.block.fill_(float("nan"))  # whatever the cache held, nothing of it may leak into the restore
    engine.kv.tokens[:] = [0] * 7
    assert engine.import_prefix(snap) == cut
    assert torch.equal(engine.kv.block[:, :, :, :cut], live_block)
    assert engine.kv.tokens == ids[:cut]
    before = engine.stats.prefilled_tokens
    got = _greedy(engine, ids, steps)
    assert engine.stats.prefilled_tokens - before == len(ids) - cut  # only the tokens past the cut
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def test_fast_engine_restore_is_bitwise(fast_engine, perplexity_text, tmp_path):
    ids = _ids(fast_engine, perplexity_text, 90)
    _restore_equals_live(fast_engine, ids, 61, through_file=tmp_path / "s.safetensors")


def test_exact_engine_restore_is_bitwise(exact_engine, perplexity_text):
    ids = _ids(exact_engine, perplexity_text, 70)
    _restore_equals_live(exact_engine, ids, 33)


def test_restore_past_the_split_kv_length(fast_engine, exact_engine, perplexity_text):
    """Decode past 1024 tokens takes the split-K/V path (odd lengths mask a padding slot)."""
    for engine in (fast_engine, exact_engine):
        ids = _ids(engine, perplexity_text, 1040)
        _restore_equals_live(engine, ids, 1027, steps=4)


def test_a_prefix_of_a_snapshot_restores(fast_engine, perplexity_text):
    ids = _ids(fast_engine, perplexity_text, 48)
    fast_engine.reset()
    fast_engine.prefill(ids)
    snap = fast_engine.export_prefix(40)
    fast_engine.reset()
    assert fast_engine.import_prefix(snap, limit=25) == 25
    assert fast_engine.kv.tokens == ids[:25]
    assert torch.equal(fast_engine.kv.block[:, :, :, :25], snap.tensors["kv"][:, :, :, :25])


def test_import_refuses_what_does_not_fit(fast_engine, exact_engine, perplexity_text):
    ids = _ids(fast_engine, perplexity_text, 20)
    fast_engine.reset()
    fast_engine.prefill(ids)
    snap = fast_engine.export_prefix(20)
    with pytest.raises(ValueError, match="holds 20"):
        fast_engine.export_prefix(21)
    exact_engine.reset()
    with pytest.raises(SnapshotRefused, match="different model identity"):
        exact_engine.import_prefix(snap)  # same weights file, other precision: another identity
    assert exact_engine.kv.tokens == []
    wrong = type(snap)(meta=snap.meta.model_copy(update={"length": 19}), tensors=snap.tensors)
    with pytest.raises(SnapshotRefused, match="does not match its 20 token ids"):
        fast_engine.import_prefix(wrong)
    cut = type(snap)(meta=snap.meta, tensors={"kv": snap.tensors["kv"][:, :, :, :19].contiguous()})
    with pytest.raises(SnapshotRefused, match="shape"):
        fast_engine.import_prefix(cut)
    window = fast_engine.context_window
    try:
        fast_engine.context_window = 20
        with pytest.raises(SnapshotRefused, match="context window of 20"):
            fast_engine.import_prefix(snap)
    finally:
        fast_engine.context_window = window
