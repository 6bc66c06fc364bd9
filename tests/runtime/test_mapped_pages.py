"""Pages of weights mapped from a file are handed back and read again unchanged; anonymous memory is never released."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dsv4.runtime.loaders import mapped_pages  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc/self/maps are Linux's")


def _resident_kb() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4


def test_released_pages_of_a_mapped_file_read_back_unchanged(tmp_path):
    weight = torch.randn(4096, 1024).bfloat16()  # 8 MiB
    torch.save({"w": weight}, tmp_path / "packed.pt")
    mapped = torch.load(tmp_path / "packed.pt", mmap=True, weights_only=True)["w"]
    assert torch.equal(mapped, weight)  # every page now resident
    ranges = mapped_pages.private_file_ranges()
    assert mapped_pages.within(mapped, ranges)
    assert not mapped_pages.within(weight, ranges)  # anonymous memory: must never be released
    before = _resident_kb()
    mapped_pages.release(mapped)
    assert before - _resident_kb() >= 7 * 1024  # the whole pages of 8 MiB went back
    assert torch.equal(mapped, weight)  # and read back from the file as they were


def test_engine_prefill_copies_from_the_cache_are_released_and_give_the_same_logits(smollm_path, perplexity_text):
    from dsv4.runtime.engine.engine import LlamaEngine
    from dsv4.runtime.layers.linear import Linear

    LlamaEngine.load(smollm_path, precision="auto", context_window=1024, threads=2)  # fills the packed-weight cache
    engine = LlamaEngine.load(smollm_path, precision="auto", context_window=1024, threads=2)
    assert engine.loaded.weights_from_cache is not None
    linears = [m for m in engine.model.modules() if isinstance(m, Linear) and m.prefill_weight is not None]
    assert linears and all(m.release_prefill_pages for m in linears)
    ids = engine.tokenizer.encode(perplexity_text)[:600]
    first = engine.prefill(ids)
    engine.kv.tokens.clear()
    second = engine.prefill(ids)  # every prefill copy read again after its pages were handed back
    for m in linears:
        m.release_prefill_pages = False
    engine.kv.tokens.clear()
    kept = engine.prefill(ids)
    assert torch.equal(first, second) and torch.equal(first, kept)


def test_first_load_adopts_the_cache_file_it_writes(smollm_path, perplexity_text, dsv4_home):
    """A first load (no cache file yet) maps the file it has just written, so its prefill copies are released too."""
    from dsv4.runtime.engine.engine import LlamaEngine
    from dsv4.runtime.layers.linear import Linear

    first = LlamaEngine.load(smollm_path, precision="auto", context_window=1024, threads=2)
    assert first.loaded.weights_from_cache is None  # packed from the checkpoint in this load
    linears = [m for m in first.model.modules() if isinstance(m, Linear) and m.prefill_weight is not None]
    assert linears and all(m.release_prefill_pages for m in linears)
    ranges = mapped_pages.private_file_ranges()
    assert all(mapped_pages.within(m.weight, ranges) for m in linears)  # the decode weights are file pages as well
    ids = first.tokenizer.encode(perplexity_text)[:600]
    later = LlamaEngine.load(smollm_path, precision="auto", context_window=1024, threads=2)
    assert later.loaded.weights_from_cache is not None
    assert torch.equal(first.prefill(ids), later.prefill(ids))
