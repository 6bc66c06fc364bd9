"""The llama live warm tier on the real SmolLM2 engine: without demotion every step is bit for bit the all-hot
engine's; with a small hot budget the oldest positions go int8 as the context grows, attention reads warm
chunks + hot rows (no dequantised copy), logits stay within a stated tolerance of the all-hot engine and
greedy continuations agree; truncation and reset zero what they drop; snapshots export and import with warm
rows. Where the C kernels build, the "auto" (bf16) engine's warm rows are read by them (runtime/layers/cpu_decode.c,
cpu_prefill.c) and they agree with the torch split attention (`DSV4_CPU_WARM_ATTENTION=0`)."""

from __future__ import annotations

import pytest
import torch

from dsv4.runtime.engine.engine import LlamaEngine
from dsv4.runtime.engine.generation import PREFILL_CHUNK
from dsv4.runtime.engine.kv_tiers import DEMOTE_STEP
from dsv4.runtime.layers import cpu_decode

# bf16 activations: the all-hot engine's own chunked-vs-whole differences are ~0.1-0.3 of a logit; int8 K/V
# (one fp16 scale per head vector) adds about as much again (0.6-0.7 measured on these prompts)
LOGIT_TOLERANCE = {"auto": 1.5, "fp32": 1.0}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def per_position(engine: LlamaEngine) -> int:
    block = engine.kv.block
    return block[:, :, :, 0].numel() * block.element_size()


@pytest.fixture
def tiered(request, fast_engine, exact_engine):
    """A second engine over the same weights with a hot budget of `request.param` = (precision, positions);
    the shared attention layers are pointed back at the fixture engine's cache afterwards."""
    precision, positions = request.param
    base = {"auto": fast_engine, "fp32": exact_engine}[precision]
    engine = LlamaEngine(base.loaded, context_window=2048, threads=1, hot_kv_bytes=positions * per_position(base))
    yield base, engine
    engine.reset()
    base.reset()  # re-points the layers at base's block


def prompt(engine: LlamaEngine, text: str, n: int, skip: int = 0) -> list[int]:
    ids = engine.tokenizer.encode(text * (2 + n // 300))[skip : skip + n]
    assert len(ids) == n
    return ids


def forced_logits(engine: LlamaEngine, ids: list[int], continuation: list[int]) -> list[torch.Tensor]:
    """Logits of the prefill and of decode steps fed `continuation` (teacher forcing: both engines see the same tokens)."""
    engine.reset()
    out = [engine.prefill(ids).float()]
    for token in continuation:
        out.append(engine.decode(token).float())
    return out


def greedy(engine: LlamaEngine, ids: list[int], steps: int) -> list[int]:
    engine.reset()
    tokens = [int(engine.prefill(ids).argmax())]
    for _ in range(steps - 1):
        tokens.append(int(engine.decode(tokens[-1]).argmax()))
    return tokens


@pytest.mark.parametrize("tiered", [("auto", 100_000)], indirect=True)
def test_a_budget_that_is_never_reached_is_bitwise_the_all_hot_engine(tiered, perplexity_text):
    base, engine = tiered
    ids = prompt(base, perplexity_text, 1100)  # past SPLIT_KV_MIN: the split-key decode path too
    continuation = greedy(base, ids, 6)
    want = forced_logits(base, ids, continuation)
    got = forced_logits(engine, ids, continuation)
    assert engine.kv.warm.n == 0 and all(layer.warm is None for layer in engine.kv.layers)
    for a, b in zip(want, got, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("tiered", [("auto", 128), ("fp32", 128)], indirect=True)
def test_warm_rows_stay_within_tolerance_and_greedy_agrees(tiered, perplexity_text):
    base, engine = tiered
    precision = "auto" if base.kv.dtype == torch.bfloat16 else "fp32"
    ids = prompt(base, perplexity_text, 700)
    continuation = greedy(base, ids, 8)
    want = forced_logits(base, ids, continuation)
    got = forced_logits(engine, ids, continuation)
    assert engine.kv.warm.n >= 700 - 128 - DEMOTE_STEP  # most of the context is warm
    errors = [float((a - b).abs().max()) for a, b in zip(want, got, strict=True)]
    assert max(errors) <= LOGIT_TOLERANCE[precision], errors
    assert greedy(engine, ids, 8) == continuation


@pytest.mark.slow
@pytest.mark.parametrize("tiered", [("auto", 256)], indirect=True)
def test_greedy_continuations_agree_on_a_fixed_prompt_set(tiered, perplexity_text):
    base, engine = tiered
    for skip, n in ((0, 1200), (150, 900), (333, 1500)):
        ids = prompt(base, perplexity_text, n, skip)
        assert greedy(engine, ids, 16) == greedy(base, ids, 16), (skip, n)


@pytest.mark.parametrize("tiered", [("auto", 128)], indirect=True)
def test_demotion_as_context_grows(tiered, perplexity_text):
    _, engine = tiered
    kv = engine.kv
    ids = prompt(engine, perplexity_text, 1101)
    engine.reset()
    engine.prefill(ids[:100])
    assert kv.warm.n == 0  # under the budget: all hot
    seen = []
    for end in range(300, 1101, 200):  # the context grows turn by turn
        engine.prefill(ids[:end])
        hot = len(kv.tokens) - kv.offset
        seen.append(kv.warm.n)
        assert kv.tokens == ids[:end] and hot <= 128 + PREFILL_CHUNK
        assert kv.capacity <= 2 * (128 + PREFILL_CHUNK)  # the hot block stays bounded; the warm tier grows
    token = int(engine.decode(ids[1100]).argmax())
    for _ in range(DEMOTE_STEP):  # decode demotes in steps too
        token = int(engine.decode(token).argmax())
        assert len(kv.tokens) - kv.offset <= 128 + 1
    seen.append(kv.warm.n)
    assert seen == sorted(seen) and seen[0] > 0 and seen[-1] > seen[-2]
    # nothing stale or uninitialised: the warm tier past n and the block past the hot positions are zero
    assert not kv.warm.codes[:, :, :, kv.warm.n :].any() and not kv.warm.scales[:, :, :, kv.warm.n :].any()
    assert not kv.block[:, :, :, len(kv.tokens) - kv.offset :].any()


@pytest.mark.parametrize("tiered", [("auto", 128)], indirect=True)
def test_truncation_into_the_warm_tier_and_reset_zero_what_they_drop(tiered, perplexity_text):
    base, engine = tiered
    kv = engine.kv
    ids = prompt(engine, perplexity_text, 900)
    engine.reset()
    engine.prefill(ids)
    assert kv.warm.n > 300
    edited = ids[:200] + prompt(engine, perplexity_text, 300, skip=450)  # diverges inside the warm positions
    got = engine.prefill(edited).float()
    assert kv.tokens == edited and kv.warm.n <= 200
    assert not kv.warm.codes[:, :, :, kv.warm.n :].any()
    base.reset()
    want = base.prefill(edited).float()
    assert float((got - want).abs().max()) <= LOGIT_TOLERANCE["auto"]
    engine.reset()
    assert kv.warm.n == 0 and kv.tokens == [] and all(layer.warm is None for layer in kv.layers)


@pytest.mark.parametrize("tiered", [("auto", 128)], indirect=True)
def test_snapshot_export_and_import_with_warm_rows(tiered, perplexity_text):
    base, engine = tiered
    kv = engine.kv
    ids = prompt(engine, perplexity_text, 800)
    engine.reset()
    engine.prefill(ids[:780])
    warm, hot = kv.warm.n, 780 - kv.warm.n
    assert warm > 0
    snap = engine.export_prefix(780)
    exported = snap.tensors["kv"]
    assert exported.shape[3] == 780 and exported.is_contiguous()
    assert torch.equal(exported[:, :, :, :warm], kv.warm.all(torch.bfloat16))  # the warm rows, dequantised
    assert torch.equal(exported[:, :, :, warm:], kv.block[:, :, :, :hot])
    want = engine.prefill(ids).float()

    base.reset()  # an all-hot engine restores it (and then holds the dequantised values, all hot)
    assert base.import_prefix(snap) == 780 and torch.equal(base.kv.block[:, :, :, :780], exported)
    all_hot = base.prefill(ids).float()

    engine.reset()  # a tiered one restores it and demotes to its budget at once
    assert engine.import_prefix(snap) == 780
    assert kv.warm.n > 0 and len(kv.tokens) - kv.offset <= 128 + 1
    assert kv.capacity == 256  # the block the import grew is given back (the hot budget bounds the memory)
    tiered_again = engine.prefill(ids).float()
    for got in (all_hot, tiered_again):
        assert float((got - want).abs().max()) <= LOGIT_TOLERANCE["auto"]


@pytest.mark.parametrize("prompts", [
    pytest.param(((0, 700),), id="one-prompt"),  # the default suite: the engine takes the kernel path, and agrees
    pytest.param(((0, 700), (150, 900), (333, 1200)), id="three-prompts", marks=pytest.mark.slow),
])
@pytest.mark.parametrize("tiered", [("auto", 256)], indirect=True)
def test_the_warm_kernels_agree_with_the_torch_split_attention(tiered, perplexity_text, kernel, monkeypatch, prompts):
    """Greedy continuations and forced logits of a fixed prompt set, prefill and decode with warm rows, kernels
    against the torch split path: the same tokens, logits within the tiers' tolerance of each other. (The kernels
    themselves are checked shape by shape against torch in tests/runtime/test_cpu_warm_decode.py.)"""
    _, engine = tiered
    runs: dict[str, list] = {}
    for enabled in ("1", "0"):
        monkeypatch.setenv("DSV4_CPU_WARM_ATTENTION", enabled)
        cpu_decode.cpu_decode_kernels.cache_clear()
        runs[enabled] = []
        for skip, n in prompts:
            ids = prompt(engine, perplexity_text, n, skip)
            tokens = greedy(engine, ids, 8)
            layer = engine.kv.layers[0]
            assert layer.warm is not None and engine.kv.warm.n >= n - 256 - DEMOTE_STEP
            assert (layer.decode_kernels(1) is not None) == (enabled == "1") == (layer.prefill_kernels() is not None)
            runs[enabled].append((tokens, forced_logits(engine, ids, tokens[:4])))
    cpu_decode.cpu_decode_kernels.cache_clear()
    for (kernel_tokens, kernel_logits), (torch_tokens, torch_logits) in zip(runs["1"], runs["0"], strict=True):
        assert kernel_tokens == torch_tokens
        errors = [float((a - b).abs().max()) for a, b in zip(kernel_logits, torch_logits, strict=True)]
        assert max(errors) <= LOGIT_TOLERANCE["auto"], errors
