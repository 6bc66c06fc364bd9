"""The cache side of the one-token kernels: the compressor step in C (`v4_compress_step` through
`one_token.CompressorStep`) against `attention.Compressor` one position at a time, handing its state to and from
the torch path, and the window ring of `V4LayerCache.push_window` (rows written past a shared view, copy on
write) against the plain concatenation it replaces."""

from __future__ import annotations

import pytest
import torch

from dsv4.runtime.deepseek_v4.cache import CompressorState, GrowBuffer, V4LayerCache
from dsv4.runtime.deepseek_v4.one_token import CompressorStep
from dsv4.runtime.deepseek_v4.v4_kernels import v4_kernels

from .tiny import random_model, tiny_config


@pytest.fixture(scope="module")
def model():
    # layer 1: CSA (ratio 4, overlapping windows, with the indexer's compressor), layer 2: HCA-like ratio 8
    return random_model(tiny_config(vocab=300, layers=(0, 4, 8, 4)), seed=11)


def compressors(model):
    return [model.layers[1].attn.compressor, model.layers[1].attn.indexer.compressor, model.layers[2].attn.compressor]


def projections(comp, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    width = comp.ape.shape[1]
    return torch.randn(n, width, generator=g), torch.randn(n, width, generator=g)


needs_kernels = pytest.mark.skipif(v4_kernels() is None, reason="no C compiler builds the V4 kernels here")


@needs_kernels
@torch.no_grad()
def test_compressor_step_matches_the_module_position_by_position(model):
    for comp in compressors(model):
        kv, score = projections(comp, 5 * comp.ratio + 3, seed=comp.ratio)
        ref_state, state = CompressorState(), CompressorState()
        ref_rows, store = [], GrowBuffer(comp.head_dim)
        step = CompressorStep(comp)
        for pos in range(kv.shape[0]):
            ref_rows.append(comp(kv[pos:pos + 1], score[pos:pos + 1], pos, ref_state))
            step(v4_kernels().c, kv[pos:pos + 1], score[pos:pos + 1], pos, state, store)
            # the partial window: the same rows (a copy and one float add: bitwise)
            for part in ("kv", "score", "prev_kv", "prev_score"):
                a, b = getattr(ref_state, part), getattr(state, part)
                assert (a is None) == (b is None) and (a is None or torch.equal(a, b)), (comp.ratio, pos, part)
        ref = torch.cat(ref_rows)
        assert store.n == ref.shape[0] == kv.shape[0] // comp.ratio
        # softmax, norm and rotary in C (expf, sequential sums): float32 rounding apart
        assert (store.view() - ref).abs().max() < 1e-5, comp.ratio


@needs_kernels
@torch.no_grad()
def test_compressor_state_passes_between_the_torch_chunks_and_the_kernel_steps(model):
    comp = model.layers[1].attn.compressor  # overlapping: prev rows carried too
    kv, score = projections(comp, 23, seed=3)
    ref_all = comp(kv, score, 0, CompressorState())  # the whole sequence as one chunk
    state, store, step = CompressorState(), GrowBuffer(comp.head_dim), CompressorStep(comp)
    store.append(comp(kv[:6], score[:6], 0, state))  # a prefill chunk leaves tensors of its own
    for pos in range(6, 13):
        step(v4_kernels().c, kv[pos:pos + 1], score[pos:pos + 1], pos, state, store)
    store.append(comp(kv[13:19], score[13:19], 13, state))  # a chunk after kernel steps reads their views
    for pos in range(19, 23):
        step(v4_kernels().c, kv[pos:pos + 1], score[pos:pos + 1], pos, state, store)
    assert store.n == ref_all.shape[0] == 5
    assert (store.view() - ref_all).abs().max() < 1e-5
    snapshot = state.detached()  # a restore point: tensors of its own, no kernel buffers
    assert snapshot.rows is None and torch.equal(snapshot.kv, state.kv)


def pushed_plainly(win: torch.Tensor | None, start: int, kv: torch.Tensor, pos: int, window: int):
    """The window push before the ring: concatenate, keep the last `window` rows."""
    rows = torch.cat((win, kv)) if win is not None else kv
    first = start if win is not None else pos
    if rows.shape[0] > window:
        first += rows.shape[0] - window
        rows = rows[-window:]
    return rows, first


def test_window_ring_keeps_the_window_and_every_snapshot_of_it():
    window, D = 5, 3
    g = torch.Generator().manual_seed(0)
    lc, ref, ref_start, pos = V4LayerCache(D, 2, 0), None, 0, 0
    kept = []  # (copy, its rows then) at several points
    for size in (3, 1, 1, 1, 1, 1, 7, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1):
        kv = torch.randn(size, D, generator=g)
        lc.push_window(kv, pos, window)
        ref, ref_start = pushed_plainly(ref, ref_start, kv, pos, window)
        pos += size
        assert torch.equal(lc.win, ref) and lc.win_start == ref_start, pos
        if pos % 3 == 0:
            kept.append((lc.copy(), ref.clone(), ref_start))
    for copy, rows, start in kept:  # later pushes never reached a snapshot's rows
        assert torch.equal(copy.win, rows) and copy.win_start == start
    # both the original and a copy continue: the second writer gets a ring of its own
    copy, rows, start = kept[-1][0], lc.win.clone(), lc.win_start
    a, b = torch.randn(1, D, generator=g), torch.randn(1, D, generator=g)
    lc.push_window(a, pos, window)
    copy.push_window(b, pos, window)
    assert torch.equal(lc.win, torch.cat((rows, a))[-window:]) and torch.equal(copy.win[-1], b[0])
    assert lc.ring is not copy.ring


def test_a_window_set_from_outside_is_taken_as_it_is():
    """kv_export sets `win` directly: the next push starts a ring from it."""
    lc = V4LayerCache(2, 2, 0)
    lc.win, lc.win_start = torch.arange(8.0).view(4, 2), 10
    lc.push_window(torch.tensor([[8.0, 9.0]]), 14, 4)
    assert lc.win.tolist() == [[2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [8.0, 9.0]] and lc.win_start == 11
