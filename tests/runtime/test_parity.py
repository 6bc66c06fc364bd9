"""Our llama model against transformers on the real SmolLM2 GGUF: logits, cached decode, greedy text, perplexity."""

from __future__ import annotations

import math

import pytest
import torch

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea,",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "import numpy as np\n\nx = np.arange(10)\n",
]


def _ids(engine, text: str) -> list[int]:
    return engine.tokenizer.encode(text)


def test_prompt_logits_match_transformers(exact_engine, hf_reference, perplexity_text):
    model, _ = hf_reference
    ids = _ids(exact_engine, perplexity_text)[:64]
    assert len(ids) == 64
    with torch.inference_mode():
        expected = model(torch.tensor([ids])).logits[0]  # (64, V)
    got = exact_engine.score(ids)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-3


def test_cached_decode_logits_match_transformers(exact_engine, hf_reference, perplexity_text):
    model, _ = hf_reference
    ids = _ids(exact_engine, perplexity_text)[:64]
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=21, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, pad_token_id=0)
    generated = out.sequences[0, len(ids):].tolist()
    exact_engine.kv.tokens.clear()
    logits = exact_engine.prefill(ids)
    diffs = [(logits - out.logits[0][0]).abs().max().item()]
    for step in range(20):  # prefill + 20 decode steps through the KV cache
        logits = exact_engine.decode(generated[step])
        diffs.append((logits - out.logits[step + 1][0]).abs().max().item())
    assert max(diffs) < 1e-3, diffs


def test_greedy_continuations_identical(exact_engine, hf_reference):
    from dsv4.runtime.engine.sampling import SamplingParams

    model, _ = hf_reference
    for prompt in PROMPTS:
        ids = _ids(exact_engine, prompt)
        with torch.inference_mode():
            ref = model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, pad_token_id=0,
                                 eos_token_id=sorted(exact_engine.tokenizer.stop_token_ids))[0, len(ids):].tolist()
        params = SamplingParams(max_tokens=16, temperature=0.0)
        ours = [o.token_id for o in exact_engine.generate(ids, params) if o.token_id is not None]  # incl. the stop token
        assert ours == ref, prompt


def _perplexity(logits: torch.Tensor, ids: list[int]) -> float:
    logprobs = logits[:-1].double().log_softmax(-1)
    nll = -logprobs.gather(1, torch.tensor(ids[1:]).unsqueeze(1)).mean().item()
    return math.exp(nll)


def test_perplexity_matches_transformers(exact_engine, fast_engine, hf_reference, perplexity_text):
    model, _ = hf_reference
    ids = _ids(exact_engine, perplexity_text)
    assert len(ids) > 300
    with torch.inference_mode():
        ref = _perplexity(model(torch.tensor([ids])).logits[0], ids)
    ours = _perplexity(exact_engine.score(ids), ids)
    assert abs(ours - ref) / ref < 0.005, (ours, ref)
    # the fast mode (int8 weights, bf16 activations) is not the parity mode, but must stay close
    fast = _perplexity(fast_engine.score(ids), ids)
    assert abs(fast - ref) / ref < 0.05, (fast, ref)


@pytest.mark.parametrize("prompt", PROMPTS[:2])
def test_fast_mode_greedy_mostly_agrees(exact_engine, fast_engine, prompt):
    from dsv4.runtime.engine.sampling import SamplingParams

    params = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
    exact = [o.token_id for o in exact_engine.generate(_ids(exact_engine, prompt), params) if o.token_id is not None]
    fast = [o.token_id for o in fast_engine.generate(_ids(fast_engine, prompt), params) if o.token_id is not None]
    assert exact[:3] == fast[:3]


@pytest.mark.slow
def test_long_prompt_logits_match_transformers(exact_engine, hf_reference, perplexity_text):
    """2000 tokens: four prefill chunks, RoPE at long positions."""
    model, _ = hf_reference
    ids = (_ids(exact_engine, perplexity_text) * 6)[:2000]
    with torch.inference_mode():
        expected = model(torch.tensor([ids])).logits[0, -64:]
    got = exact_engine.score(ids)[-64:]
    assert (got - expected).abs().max().item() < 1e-3
