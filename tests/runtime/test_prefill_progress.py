"""The prefill's optional progress callback: at the start and after each chunk, the tokens computed of those this
call computes (a cached prefix is not counted), and a cancel set from it stops the prefill at the next chunk."""

from __future__ import annotations

import threading

import pytest

CHUNK = 8  # small chunks keep the prompts short; the loop is the same at any size


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr("dsv4.runtime.engine.engine.PREFILL_CHUNK", CHUNK)


def test_progress_counts_the_tokens_each_chunk_computed_and_skips_the_cached_prefix(fast_engine, small_chunks):
    ids = [(17 * i) % 5000 + 200 for i in range(2 * CHUNK + 4)]
    fast_engine.reset()
    seen: list[tuple[int, int]] = []
    assert fast_engine.prefill(ids, on_progress=lambda done, total: seen.append((done, total))) is not None
    assert seen == [(0, len(ids)), (CHUNK, len(ids)), (2 * CHUNK, len(ids)), (len(ids), len(ids))]
    seen.clear()
    fast_engine.prefill(ids + [300, 301, 302], on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 3), (3, 3)]  # only the new tokens are computed, and counted


def test_a_cancel_during_the_first_chunk_leaves_the_rest_uncomputed(fast_engine, small_chunks):
    ids = [(13 * i) % 5000 + 200 for i in range(3 * CHUNK)]
    fast_engine.reset()
    cancel = threading.Event()
    before = fast_engine.stats.prefilled_tokens
    stop_after_first = lambda done, total: cancel.set() if done else None  # noqa: E731
    assert fast_engine.prefill(ids, cancel=cancel, on_progress=stop_after_first) is None
    assert fast_engine.stats.prefilled_tokens - before == CHUNK
