"""Hermes tool-call parsing, grammar-constrained decoding (llguidance), and the InProcessBackend event stream."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from dsv4.runtime.tool_calls import HermesParser, ParsedToolCall, TextPiece  # noqa: E402

from .constrained_sampling import walk  # noqa: E402

TOOLS = [
    {"type": "function", "function": {"name": "read_file", "description": "Read a file from the repository",
     "parameters": {"type": "object", "properties": {"path": {"type": "string", "maxLength": 64}, "offset": {"type": "integer"},
                    "mode": {"enum": ["text", "bytes"]}}, "required": ["path"]}}},
    {"type": "function", "function": {"name": "bash", "description": "Run a shell command",
     "parameters": {"type": "object", "properties": {"command": {"type": "string"}, "timeout_s": {"type": "number"},
                    "flags": {"type": "array", "items": {"type": "boolean"}}}, "required": ["command"]}}},
]


def _parse_stream(chunks: list[str]) -> list[TextPiece | ParsedToolCall]:
    parser, out = HermesParser(), []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out + parser.finish()


def _merge_text(items):
    merged = []
    for item in items:
        if isinstance(item, TextPiece) and merged and isinstance(merged[-1], TextPiece):
            merged[-1] = TextPiece(merged[-1].text + item.text)
        else:
            merged.append(item)
    return merged


def test_hermes_parser_any_chunking():
    text = 'Let me look.\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>\n<tool_call>{"name": "bash", "arguments": {"command": "ls <dir>"}}</tool_call>Done <tool'
    expected = [TextPiece("Let me look.\n"), ParsedToolCall("read_file", '{"path": "a.py"}'),
                ParsedToolCall("bash", '{"command": "ls <dir>"}'), TextPiece("Done <tool")]
    for size in (1, 2, 3, 7, 1000):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        assert _merge_text(_parse_stream(chunks)) == expected, size


def test_hermes_parser_bad_json_is_text_and_unclosed_call_is_a_call():
    assert _parse_stream(["<tool_call>{not json}</tool_call>"]) == [TextPiece("<tool_call>{not json}</tool_call>")]
    assert _parse_stream(['<tool_call>{"name": "bash", "arguments": {"command": "ls"}}']) == [ParsedToolCall("bash", '{"command": "ls"}')]
    assert _parse_stream(['<tool_call>{"name": "bash", "arguments": "{\\"command\\": \\"ls\\"}"}</tool_call>']) == [
        ParsedToolCall("bash", '{"command": "ls"}')]


MULTI_EDIT = {"type": "function", "function": {"name": "multi_edit", "parameters": {
    "$defs": {"OneEdit": {"type": "object", "properties": {"old_string": {"type": "string"}, "new_string": {"type": "string"}},
                          "required": ["old_string", "new_string"]}},
    "type": "object", "properties": {"path": {"type": "string"}, "edits": {"type": "array", "items": {"$ref": "#/$defs/OneEdit"}, "minItems": 1}},
    "required": ["path", "edits"]}}}
EITHER = {"type": "function", "function": {"name": "pick", "parameters": {"type": "object", "properties": {
    "size": {"anyOf": [{"type": "integer"}, {"type": "number"}]},
    "target": {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                         {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"]}]}}}}}


@pytest.mark.parametrize("text, complete", [
    ('\n{"name": "read_file", "arguments": {"path": "a.py", "offset": 10}}\n</tool_call>', True),
    ('{"name":"bash","arguments":{"command":"ls \\"x\\" \\u00e9","timeout_s":-1.5e3,"flags":[true,false]}}</tool_call>', True),
    ('{"name": "read_file", "arguments": {"path": "a", "mode": "bytes"}}</tool_call>', True),
    ('{"name": "read_file", "arguments": {"path": "a😀 ünï.py"}}</tool_call>', True),  # byte-level tokens of an emoji
    ('{"name": "bash", "arguments": {}}', False),  # a required key is missing
    ('{"name": "rm", ', False),  # not a tool
    ('{"arguments": {}}', False),  # the name comes first
    ('{"name": "read_file", "arguments": {"path": "a", "offset": 1.5}}', False),  # integer
    ('{"name": "read_file", "arguments": {"path": "a", "mode": "w"}}', False),  # enum
    ('{"name": "read_file", "arguments": {"path": "a", "other": 1}}', False),  # unknown key
    ('{"name": "read_file", "arguments": {"path": "' + "x" * 65 + '"}}', False),  # maxLength
    ('{"name": "read_file", "arguments": {"path": "a\nb"}}', False),  # raw newline in a string
    ('{"name": "read_file", "arguments": {"path": "a"}}</tool_call> trailing', False),  # free text after the call
])
def test_grammar(fast_engine, text, complete):
    from dsv4.runtime.constrain import ToolCallConstraint

    processor = ToolCallConstraint(fast_engine.tokenizer, TOOLS, inside_call=True)
    refused_at, still_open = walk(processor, fast_engine.tokenizer, text)
    if complete:
        assert refused_at is None and not still_open  # every token allowed, and the closing tag ended the call
    elif text.endswith("trailing"):
        assert refused_at is None and not still_open  # after the call the text is free again, not masked
    else:
        assert refused_at is not None


@pytest.mark.parametrize("args, ok", [
    ({"path": "a", "edits": [{"old_string": "x", "new_string": "y"}]}, True),
    ({"path": "a", "edits": [1, None]}, False),  # the $ref is resolved: items must be OneEdit objects
    ({"path": "a", "edits": [{"old_string": "x"}]}, False),  # OneEdit's required key
    ({"path": "a", "edits": []}, False),  # minItems
])
def test_grammar_resolves_refs(fast_engine, args, ok):
    from dsv4.runtime.constrain import ToolCallConstraint

    processor = ToolCallConstraint(fast_engine.tokenizer, [MULTI_EDIT], inside_call=True)
    text = json.dumps({"name": "multi_edit", "arguments": args}) + "</tool_call>"
    assert (walk(processor, fast_engine.tokenizer, text)[0] is None) is ok


@pytest.mark.parametrize("args", [{"size": 1.5}, {"size": 2}, {"target": {"b": "x"}}, {"target": {"a": 1}}])
def test_grammar_keeps_every_anyof_alternative(fast_engine, args):
    from dsv4.runtime.constrain import ToolCallConstraint

    processor = ToolCallConstraint(fast_engine.tokenizer, [EITHER], inside_call=True)
    text = json.dumps({"name": "pick", "arguments": args}) + "</tool_call>"
    assert walk(processor, fast_engine.tokenizer, text) == (None, False)


def test_mask_covers_the_whole_vocabulary(fast_engine):
    from dsv4.runtime.constrain import ToolCallConstraint

    tok = fast_engine.tokenizer
    processor = ToolCallConstraint(tok, TOOLS, inside_call=True)
    ids = tok.encode('{"name": "bash", "arguments": {"command": "')
    logits = -torch.arange(tok.vocab_size, dtype=torch.float32)  # the valid tokens are not the likely ones
    masked = processor(logits, ids)
    allowed = torch.isfinite(masked)
    assert int(allowed.sum()) > 40000  # inside a string nearly every token fits, not only the top 64
    quote = tok.encode('"')[0]
    assert allowed[quote] and not allowed[min(tok.stop_token_ids)]  # no end of turn mid-call
    assert torch.equal(masked[allowed], logits[allowed])  # the allowed logits are untouched


def test_calls_after_free_text_are_guided_and_then_free_again(fast_engine):
    from dsv4.runtime.constrain import ToolCallConstraint

    tok = fast_engine.tokenizer
    processor = ToolCallConstraint(tok, TOOLS)
    text = 'Let me look. <tool_call>{"name": "read_file", "arguments": {"path": "a"}}</tool_call> and <tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call> done'
    assert walk(processor, tok, text) == (None, False) and processor.calls_opened == 2
    processor = ToolCallConstraint(tok, TOOLS)
    assert walk(processor, tok, 'Now <tool_call>{"name": "nope"')[0] is not None


def _valid_call(call: ParsedToolCall) -> bool:
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    if call.name not in schemas:
        return False
    args = json.loads(call.arguments)
    props = schemas[call.name]["properties"]
    types = {"string": str, "integer": int, "number": (int, float), "array": list}
    return set(schemas[call.name]["required"]) <= set(args) and set(args) <= set(props) and all(
        isinstance(v, types[props[k]["type"]]) if "type" in props[k] else v in props[k]["enum"] for k, v in args.items())


def test_constrained_decoding_forces_a_valid_call(fast_engine):
    from dsv4.runtime.chat import ChatFormat
    from dsv4.runtime.engine.sampling import SamplingParams
    from dsv4.runtime.constrain import ToolCallConstraint

    tok = fast_engine.tokenizer
    prompt = ChatFormat(tok).prompt_ids([{"role": "user", "content": "Open the file config/settings.toml"}], TOOLS)
    prompt += tok.encode("<tool_call>\n")
    params = SamplingParams(max_tokens=60, temperature=0.0)
    processor = ToolCallConstraint(tok, TOOLS, inside_call=True)
    text = "".join(o.text for o in fast_engine.generate(prompt, params, logits_processor=processor))
    items = [i for i in _parse_stream(["<tool_call>" + text]) if isinstance(i, ParsedToolCall)]
    assert items and _valid_call(items[0]), text


def test_constraint_leaves_free_text_alone(fast_engine):
    from dsv4.runtime.engine.sampling import SamplingParams
    from dsv4.runtime.constrain import ToolCallConstraint

    ids = fast_engine.tokenizer.encode("The sky is")
    params = SamplingParams(max_tokens=8, temperature=0.0)
    free = [o.token_id for o in fast_engine.generate(ids, params)]
    processor = ToolCallConstraint(fast_engine.tokenizer, TOOLS)
    assert [o.token_id for o in fast_engine.generate(ids, params, logits_processor=processor)] == free


# --- the backend --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(fast_engine):
    from dsv4.agent.backends.inprocess import InProcessBackend

    return InProcessBackend(fast_engine, name="smollm2-135m")


def test_backend_streams_text_then_usage_then_done(backend):
    from dsv4.agent.backends.base import Backend, GenerationParams
    from dsv4.agent.messages import user

    assert isinstance(backend, Backend)
    events = list(backend.stream([user("Say hello.")], [], GenerationParams(temperature=0, max_tokens=20)))
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["usage", "done"] and set(kinds[:-2]) == {"text_delta"}
    assert "".join(e.text for e in events[:-2]).strip()
    assert events[-2].prompt_tokens == backend.count_tokens([user("Say hello.")])
    assert events[-1].finish_reason in ("stop", "length")


def test_backend_emits_tool_call_events(backend):
    from dsv4.agent.backends.base import GenerationParams
    from dsv4.agent.messages import Message, ToolCall, user

    def call(i: int, path: str) -> Message:
        return Message(role="assistant", content="", tool_calls=[ToolCall(id=f"c{i}", name="read_file", arguments=json.dumps({"path": path}))])

    # two worked examples; the 135M model then follows the pattern
    history = [user("Read setup.py"), call(1, "setup.py"), user("Read app.py"), call(2, "app.py"), user("Read main.py")]
    events = list(backend.stream(history, TOOLS[:1], GenerationParams(temperature=0, max_tokens=40)))
    calls = [e for e in events if e.type == "tool_call"]
    assert len(calls) == 1 and calls[0].name == "read_file" and calls[0].parsed_arguments() == {"path": "main.py"}
    assert events[-1].type == "done" and events[-1].finish_reason == "tool_calls"


def test_backend_reports_context_overflow_as_an_error_event(backend):
    from dsv4.agent.backends.base import GenerationParams
    from dsv4.agent.messages import user

    events = list(backend.stream([user("word " * 3000)], [], GenerationParams(max_tokens=5)))
    assert len(events) == 1 and events[0].type == "error" and events[0].kind == "runtime"
    assert "does not fit the context window" in events[0].message


def test_backend_reuses_the_prefix_across_turns(backend):
    from dsv4.agent.backends.base import GenerationParams
    from dsv4.agent.messages import Message, user

    first = [user("What is the capital of France?")]
    events = list(backend.stream(first, TOOLS, GenerationParams(temperature=0, max_tokens=12)))
    reply = "".join(e.text for e in events if e.type == "text_delta")
    second = first + [Message(role="assistant", content=reply), user("And of Spain?")]
    usage = [e for e in backend.stream(second, TOOLS, GenerationParams(temperature=0, max_tokens=4)) if e.type == "usage"][0]
    assert usage.cached_prompt_tokens >= backend.count_tokens(first)  # the tool schemas and first turn are not re-read
