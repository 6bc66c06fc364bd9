"""The warm tier a CUDA cache keeps in pinned host memory (`warm_host.HostInt8Rows`), run here with pinning off
on CPU tensors: the same queue-copy-wait logic and dispatch, with the torch references or (kernels forced) the
quantise/dequantise kernels and the sparse attention over the selected warm rows in the Triton interpreter."""

from __future__ import annotations

import pytest
import torch

from dsv4.kernels import dispatch
from dsv4.kernels.kv_quant import dequantize_kv_ref, quantize_kv_ref
from dsv4.runtime.deepseek_v4.kv_tiers import Int8Rows, SplitRows, demote_oldest, selected_rows
from dsv4.runtime.deepseek_v4.warm_host import HostInt8Rows
from tests.runtime.v4.tiny import random_model, tiny_config

from .conftest import interpreter, needs_triton

CPU = torch.device("cpu")


def test_host_rows_hold_the_kernel_format_and_share_rows_on_copy(gen) -> None:
    rows = torch.randn(40, 128, generator=gen) * 3
    warm = HostInt8Rows(128, CPU, pin=False)
    warm.append(rows[:25])
    warm.append(rows[25:])
    assert warm.n == 40 and warm.codes.data.dtype == torch.int8 and warm.nbytes() == 40 * 128 + 40 * 2 * 4
    want = dequantize_kv_ref(quantize_kv_ref(rows, "int8"))
    idx = torch.tensor([[3, 39, 0], [17, 17, 26]])
    assert torch.equal(warm.gather(idx), want[idx])
    assert torch.equal(warm.all(), want)
    fork = warm.copy()
    fork.append(rows[:5])
    warm.append(rows[5:7])  # copy on write: neither append reaches the other
    assert torch.equal(fork.all()[40:], want[:5]) and torch.equal(warm.all()[40:], want[5:7])
    assert warm.n == 42 and fork.n == 45


def test_selected_rows_renumber_the_candidates(gen) -> None:
    rows = torch.randn(30, 64, generator=gen)
    warm = HostInt8Rows(64, CPU, pin=False)
    warm.append(rows[:20])
    split = SplitRows(warm, rows[20:])
    idx = torch.tensor([[-1, 4, 25], [4, 19, -1], [29, 20, 0]])
    pool, renumbered = split.selected(idx)
    assert pool.shape == (3 + 10, 64)  # warm rows 0, 4, 19 once each, then the 10 hot rows
    picked = pool[renumbered.clamp(min=0)]
    assert torch.equal(picked[renumbered >= 0], split[idx.clamp(min=0)][idx >= 0])
    assert torch.equal(renumbered < 0, idx < 0)
    # decode: the hot rows by index, the selected warm rows still quantised (read by the quantised-KV kernel)
    hot, hot_idx, quantised = selected_rows(split, idx[:1], decode=True)
    assert hot is split.hot and torch.equal(hot_idx, torch.tensor([[-1, -1, 5]]))
    assert quantised.fmt == "int8" and torch.equal(dequantize_kv_ref(quantised), split[torch.tensor([4])])
    cpu_tier = Int8Rows(64)
    cpu_tier.append(rows[:20])
    pool, renumbered, none = selected_rows(SplitRows(cpu_tier, rows[20:]), idx[:1], decode=True)
    assert none is None and pool.shape == (1 + 10, 64)  # fp16 scales: dequantised in front of the hot rows
    assert selected_rows(rows, idx, decode=True) == (rows, idx, None)


def test_widths_the_int8_blocks_do_not_divide_stay_hot() -> None:
    cache = random_model(tiny_config(vocab=64, layers=(4,), head_dim=32), seed=1).new_cache()
    lc = cache.layers[0]
    lc.append_compressed(torch.randn(100, 32))
    demote_oldest(lc, 16, host=True)
    assert lc.warm is None and lc.compressed.n == 100
    demote_oldest(lc, 16, host=False)  # the CPU tier takes any width
    assert isinstance(lc.warm, Int8Rows) and lc.compressed.n == 16


def decode_with_warm_rows(model, ids: torch.Tensor, *, host: bool | None, kernels: bool) -> torch.Tensor:
    """Prefill ids[:-4] (torch path), demote all but 16 compressed rows per CSA layer, decode the last 4."""
    cache = model.new_cache()
    model(ids[:-4], cache)
    if host is not None:
        for lc in cache.layers:
            demote_oldest(lc, 16, host=host)
        assert all(lc.warm is not None and lc.warm.n >= 64 for lc in cache.layers if lc.ratio == 4)
    with dispatch.kernels_enabled(kernels, on_cpu=kernels):
        return torch.cat([model(ids[i:i + 1], cache) for i in range(ids.shape[0] - 4, ids.shape[0])])


@pytest.fixture(scope="module")
def model_and_ids():
    cfg = tiny_config(vocab=64, layers=(0, 4, 8, 4), head_dim=64, rope=16, window=8, topk=8)
    ids = torch.randint(0, 64, (344,), generator=torch.Generator().manual_seed(7))  # 85 compressed rows per CSA layer
    return random_model(cfg, seed=5), ids


def test_host_warm_tier_through_the_references(model_and_ids) -> None:
    model, ids = model_and_ids
    hot = decode_with_warm_rows(model, ids, host=None, kernels=False)
    host = decode_with_warm_rows(model, ids, host=True, kernels=False)
    cpu_tier = decode_with_warm_rows(model, ids, host=False, kernels=False)
    assert not torch.equal(host, hot)  # the selection read warm (quantised) rows
    for got in (host, cpu_tier):
        assert (got - hot).abs().max() < 0.02 * hot.abs().max()


@needs_triton
@interpreter
def test_host_warm_tier_through_the_kernels(model_and_ids) -> None:
    model, ids = model_and_ids
    refs = decode_with_warm_rows(model, ids, host=True, kernels=False)
    kernels = decode_with_warm_rows(model, ids, host=True, kernels=True)
    torch.testing.assert_close(kernels, refs, rtol=1e-3, atol=1e-3)
    assert torch.equal(kernels.argmax(-1), refs.argmax(-1))
    assert not torch.equal(kernels, refs)  # the kernels ran: their sums round differently
