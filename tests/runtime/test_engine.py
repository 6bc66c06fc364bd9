"""Engine behaviour on the real model: prefix reuse, chunked prefill, stops, sampling, cancellation, context cap."""

from __future__ import annotations

import threading

import pytest
import torch

from dsv4.runtime.chat import ChatFormat
from dsv4.runtime.engine.generation import StopMatcher
from dsv4.runtime.engine.sampling import SamplingParams
from dsv4.runtime.errors import ContextOverflow


def _text(outputs) -> str:
    return "".join(o.text for o in outputs)


def test_second_turn_prefills_only_new_tokens(fast_engine):
    chat = ChatFormat(fast_engine.tokenizer)
    turn1 = [{"role": "user", "content": "Name three colours."}]
    ids1 = chat.prompt_ids(turn1)
    fast_engine.kv.tokens.clear()
    before = fast_engine.stats.prefilled_tokens
    reply = _text(fast_engine.generate(ids1, SamplingParams(max_tokens=12, temperature=0.0)))
    assert fast_engine.stats.prefilled_tokens - before == len(ids1)

    turn2 = turn1 + [{"role": "assistant", "content": reply}, {"role": "user", "content": "And three animals?"}]
    ids2 = chat.prompt_ids(turn2)
    assert ids2[: len(ids1)] == ids1
    before, reused_before = fast_engine.stats.prefilled_tokens, fast_engine.stats.reused_tokens
    list(fast_engine.generate(ids2, SamplingParams(max_tokens=4, temperature=0.0)))
    prefilled = fast_engine.stats.prefilled_tokens - before
    assert fast_engine.stats.reused_tokens - reused_before >= len(ids1)
    assert prefilled == len(ids2) - (fast_engine.stats.reused_tokens - reused_before)
    assert prefilled < len(ids2) - len(ids1) + 1


def test_same_prompt_twice_reuses_all_but_one_token(fast_engine):
    ids = fast_engine.tokenizer.encode("A short prompt that is repeated.")
    list(fast_engine.generate(ids, SamplingParams(max_tokens=2, temperature=0.0)))
    before = fast_engine.stats.prefilled_tokens
    list(fast_engine.generate(ids, SamplingParams(max_tokens=2, temperature=0.0)))
    assert fast_engine.stats.prefilled_tokens - before == 1  # the last token is re-run to get its logits


def test_chunked_and_resumed_prefill_equal_one_pass(exact_engine, perplexity_text):
    from dsv4.runtime.engine import engine as engine_module

    ids = exact_engine.tokenizer.encode(perplexity_text * 2)[:700]  # crosses the 512-token chunk boundary
    assert engine_module.PREFILL_CHUNK < len(ids)
    exact_engine.kv.tokens.clear()
    whole = exact_engine.prefill(ids)
    exact_engine.kv.tokens.clear()
    exact_engine.prefill(ids[:333])
    resumed = exact_engine.prefill(ids)  # reuses 333 tokens, runs the rest with a causal offset mask
    assert (whole - resumed).abs().max().item() < 1e-4


def test_greedy_is_deterministic_and_seeded_sampling_repeats(fast_engine):
    ids = fast_engine.tokenizer.encode("The weather today is")
    greedy = SamplingParams(max_tokens=10, temperature=0.0)
    assert _text(fast_engine.generate(ids, greedy)) == _text(fast_engine.generate(ids, greedy))
    sampled = SamplingParams(max_tokens=10, temperature=1.0, top_p=0.95, top_k=50, seed=1234)
    first = [o.token_id for o in fast_engine.generate(ids, sampled)]
    assert first == [o.token_id for o in fast_engine.generate(ids, sampled)]


def test_stop_string_is_not_streamed(fast_engine):
    ids = fast_engine.tokenizer.encode("1, 2, 3, 4, 5, 6, 7,")
    free = _text(fast_engine.generate(ids, SamplingParams(max_tokens=12, temperature=0.0)))
    assert " 9" in free
    outputs = list(fast_engine.generate(ids, SamplingParams(max_tokens=12, temperature=0.0, stop=[" 9"])))
    assert outputs[-1].finish_reason == "stop"
    assert _text(outputs) == free[: free.index(" 9")]


def test_stop_matcher_holds_back_partial_matches():
    m = StopMatcher(["</end>"])
    assert m.feed("abc</e") == ("abc", False)
    assert m.feed("x") == ("</ex", False)
    assert m.feed("</en") == ("", False)
    assert m.feed("d>tail") == ("", True)


def test_cancel_stops_generation(fast_engine):
    ids = fast_engine.tokenizer.encode("Tell me a long story about a dragon.")
    cancel = threading.Event()
    outputs = []
    for out in fast_engine.generate(ids, SamplingParams(max_tokens=200, temperature=0.0, ignore_eos=True), cancel=cancel):
        outputs.append(out)
        if len(outputs) == 3:
            cancel.set()
    assert outputs[-1].finish_reason == "cancelled"
    assert len(outputs) == 4


def test_prompt_longer_than_context_fails_before_work(fast_engine):
    ids = fast_engine.tokenizer.encode("word " * (fast_engine.context_window + 10))
    before = fast_engine.stats.prefilled_tokens
    with pytest.raises(ContextOverflow, match="does not fit the context window of 2048"):
        next(fast_engine.generate(ids, SamplingParams(max_tokens=4)))
    assert fast_engine.stats.prefilled_tokens == before


def test_empty_prompt_is_an_error(fast_engine):
    from dsv4.runtime.errors import RuntimeModelError

    with pytest.raises(RuntimeModelError, match="empty prompt"):
        next(fast_engine.generate([], SamplingParams(max_tokens=4)))


def test_generation_stops_at_the_context_window(smollm_path):
    from dsv4.runtime.engine.engine import LlamaEngine

    engine = LlamaEngine.load(smollm_path, precision="int8", context_window=48)
    ids = engine.tokenizer.encode("Count: one two three four five six seven eight nine ten")
    outputs = list(engine.generate(ids, SamplingParams(max_tokens=500, temperature=0.0, ignore_eos=True)))
    assert outputs[-1].finish_reason == "length"
    assert len(engine.kv.tokens) <= 48


def test_utf8_split_across_tokens_streams_whole_characters(fast_engine):
    ids = fast_engine.tokenizer.encode("emoji: 🚀🚀🚀")
    # feed the prompt's own tokens through the streaming decoder the engine uses
    from tokenizers.decoders import DecodeStream

    stream = DecodeStream(skip_special_tokens=False)
    pieces = [stream.step(fast_engine.tokenizer.backend, i) or "" for i in ids]
    assert "".join(pieces) == "emoji: 🚀🚀🚀"
    assert all("\ufffd" not in p for p in pieces)


def test_kv_cache_grows_with_the_sequence_and_keeps_its_history(fast_engine, perplexity_text):
    from dsv4.runtime.engine.kv_cache import MIN_CAPACITY

    fast_engine.reset()
    ids = fast_engine.tokenizer.encode(perplexity_text * 2)[:600]
    fast_engine.prefill(ids[:100])
    assert fast_engine.kv.block.shape == (30, 2, 3, MIN_CAPACITY, 64) and fast_engine.kv.block.dtype == torch.bfloat16
    before = fast_engine.kv.block[:, :, :, :100].clone()
    fast_engine.prefill(ids)  # reuses the 100 cached tokens, grows the block to hold 600
    assert fast_engine.kv.capacity == 4 * MIN_CAPACITY and fast_engine.stats.reused_tokens >= 100
    assert torch.equal(fast_engine.kv.block[:, :, :, :100], before)
    layer = fast_engine.model.attention_layers()[0]
    assert layer.k_cache.data_ptr() == fast_engine.kv.block[0, 0].data_ptr()  # the layers see the new block
    fast_engine.reset()
    assert float(fast_engine.kv.block.abs().sum()) == 0.0


def test_kv_cache_never_grows_past_the_window():
    from dsv4.runtime.engine.kv_cache import KVCache

    class Layer:
        num_kv_heads, head_dim = 2, 4

    cache = KVCache([Layer()], max_len=300, dtype=torch.float32)
    cache.reserve(299)
    assert cache.capacity == 300


@pytest.mark.parametrize("n", [1100, 1101])  # even and odd: the split-key decode path past SPLIT_KV_MIN
def test_long_context_decode_equals_prefill(exact_engine, perplexity_text, n):
    from dsv4.runtime.layers.attention import SPLIT_KV_MIN

    ids = exact_engine.tokenizer.encode(perplexity_text * 4)[: n + 1]
    assert n > SPLIT_KV_MIN
    exact_engine.kv.tokens.clear()
    exact_engine.prefill(ids[:n])
    decoded = exact_engine.decode(ids[n])
    exact_engine.kv.tokens.clear()
    prefilled = exact_engine.prefill(ids)
    assert (decoded - prefilled).abs().max().item() < 1e-4


def test_kv_cache_clear_erases_the_cached_prefix():
    import torch

    from dsv4.runtime.engine.kv_cache import KVCache

    class Layer:
        num_kv_heads, head_dim = 2, 4

    cache = KVCache([Layer(), Layer()], max_len=8, dtype=torch.float32)
    cache.block.fill_(1.5)
    cache.tokens.extend([1, 2, 3])
    cache.clear()
    assert cache.tokens == [] and cache.common_prefix([1, 2, 3]) == 0 and float(cache.block.abs().sum()) == 0.0
