"""V4 chat encoding against the upstream golden vectors, and the DSML parser round trip."""

import json
from pathlib import Path

import pytest

from dsv4.runtime.deepseek_v4 import encoding as enc

REF = Path(__file__).resolve().parents[4] / "shared" / "reference" / "dsv4_encoding"
if not REF.exists():
    REF = Path("/work/shared/reference/dsv4_encoding")

# vectors 1-3 are thinking-mode conversations, 4 is chat mode
MODES = {1: "thinking", 2: "thinking", 3: "thinking", 4: "chat"}


def _load(n):
    data = json.loads((REF / f"test_input_{n}.json").read_text(encoding="utf-8"))
    if isinstance(data, dict):
        return data["messages"], data.get("tools")
    return data, None


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_golden_vectors_byte_for_byte(n):
    if not REF.exists():
        pytest.skip("reference vectors not present")
    messages, tools = _load(n)
    expected = (REF / f"test_output_{n}.txt").read_text(encoding="utf-8")
    assert enc.encode_messages(messages, tools=tools, thinking_mode=MODES[n]) == expected


@pytest.mark.parametrize("n", [1, 3])
def test_parser_round_trips_tool_calls(n):
    if not REF.exists():
        pytest.skip("reference vectors not present")
    messages, _ = _load(n)
    for m in messages:
        if m.get("role") != "assistant" or not m.get("tool_calls"):
            continue
        text = m.get("content") or ""
        text = f"{m.get('reasoning_content', '')}</think>{text}\n\n" + enc.encode_tool_calls(m["tool_calls"]) + enc.EOS
        parsed = enc.parse_completion(text, thinking_mode="thinking")
        assert parsed.finished and parsed.reasoning_content == m["reasoning_content"]
        assert parsed.content == (m.get("content") or "")
        want = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in m["tool_calls"]]
        assert [(c.name, c.arguments) for c in parsed.tool_calls] == want


def test_non_string_arguments_round_trip():
    calls = [{"name": "f", "arguments": {"n": 3, "flags": [True, None], "o": {"a": "ü"}, "s": "x\ny"}}]
    parsed = enc.parse_completion("ok\n\n" + enc.encode_tool_calls(calls))
    assert parsed.content == "ok"
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("f", calls[0]["arguments"])]


def test_generation_prompt_and_effort():
    msgs = [{"role": "user", "content": "hi"}]
    assert enc.encode_messages(msgs) == f"{enc.BOS}{enc.USER}hi{enc.ASSISTANT}</think>"
    out = enc.encode_messages(msgs, thinking_mode="thinking", reasoning_effort="max")
    assert out.startswith(enc.BOS + "Reasoning Effort: Absolute maximum") and out.endswith(enc.ASSISTANT + "<think>")


def test_tool_results_follow_call_order():
    msgs = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "a", "function": {"name": "f", "arguments": "{}"}},
            {"id": "b", "function": {"name": "g", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "b", "content": "B"},
        {"role": "tool", "tool_call_id": "a", "content": "A"},
    ]
    out = enc.encode_messages(msgs)
    assert out.endswith(f"{enc.USER}<tool_result>A</tool_result><tool_result>B</tool_result>{enc.ASSISTANT}</think>")
