"""The OpenAI-compatible client against real loopback servers: tool-call accumulation, estimated usage, the context
window from /models, extra_body, redaction of every error path."""

from __future__ import annotations

import json

import pytest

from dsv4.agent.backends.base import GenerationParams
from dsv4.agent.backends.openai_compat import OpenAICompatBackend
from dsv4.agent.backends.replay_server import RawReply
from dsv4.agent.events import Done, Error, Usage
from dsv4.agent.messages import ToolCall, user

from .test_malformed_responses import chunk, raw, sse


def stream(server, **kwargs) -> list:
    backend = OpenAICompatBackend(server.base_url, "m", max_retries=0, **kwargs)
    return list(backend.stream([user("hi")], [], GenerationParams()))


def tool_call(index: object = 0, **fields: object) -> dict:
    call = {"function": {k: v for k, v in fields.items() if k in ("name", "arguments")}}
    if index is not None:
        call["index"] = index
    call.update({k: v for k, v in fields.items() if k in ("id", "type")})
    return chunk({"tool_calls": [call]})


def test_a_name_repeated_in_every_chunk_is_set_once(replay):
    # llama-cpp-python's server: id, type and name again with each arguments fragment
    pieces = ['{"pa', 'th": "a.', 'py"}']
    body = sse(*[tool_call(0, id="call_1", type="function", name="read_file", arguments=p) for p in pieces],
               chunk({}, "tool_calls"))
    server = replay([], faults=[raw(body)])
    calls = [e for e in stream(server) if isinstance(e, ToolCall)]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [("call_1", "read_file", {"path": "a.py"})]


def test_two_interleaved_calls_keyed_by_index_with_an_id_set_once(replay):
    body = sse(tool_call(0, id="a", name="read_file", arguments='{"path":'), tool_call(1, id="b", name="list_files", arguments="{"),
               tool_call(0, id="ignored", arguments=' "x"}'), tool_call(1, arguments="}"), chunk({}, "tool_calls"))
    server = replay([], faults=[raw(body)])
    calls = [e for e in stream(server) if isinstance(e, ToolCall)]
    assert [(c.id, c.name, c.arguments) for c in calls] == [("a", "read_file", '{"path": "x"}'), ("b", "list_files", "{}")]


def test_deltas_without_an_index_continue_the_latest_call_until_a_new_id(replay):
    body = sse(tool_call(None, id="a", name="read_file", arguments='{"path": '), tool_call(None, arguments='"x"}'),
               tool_call(None, id="b", name="list_files", arguments="{}"), chunk({}, "tool_calls"))
    server = replay([], faults=[raw(body)])
    calls = [e for e in stream(server) if isinstance(e, ToolCall)]
    assert [(c.id, c.name, c.arguments) for c in calls] == [("a", "read_file", '{"path": "x"}'), ("b", "list_files", "{}")]


def test_a_server_without_usage_gets_an_estimate_marked_estimated(replay):
    body = sse(chunk({"content": "x" * 400}), chunk({}, "stop"))
    server = replay([], faults=[raw(body)])
    usage = next(e for e in stream(server) if isinstance(e, Usage))
    assert usage.estimated and usage.completion_tokens == 101 and usage.prompt_tokens > 0
    assert (usage + Usage(prompt_tokens=1)).estimated


def test_reported_usage_is_not_estimated_and_reads_both_cache_fields(replay):
    deepseek = sse(chunk({"content": "a"}, "stop"), {"choices": [], "usage": {
        "prompt_tokens": 50, "completion_tokens": 2, "prompt_cache_hit_tokens": 40, "prompt_cache_miss_tokens": 10}})
    openai = sse(chunk({"content": "a"}, "stop"), {"choices": [], "usage": {
        "prompt_tokens": 50, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 32}}})
    server = replay([], faults=[raw(deepseek), raw(openai)])
    first, second = (next(e for e in stream(server) if isinstance(e, Usage)) for _ in range(2))
    assert (first.cached_prompt_tokens, second.cached_prompt_tokens) == (40, 32)
    assert not first.estimated and first.prompt_tokens == 50


@pytest.mark.parametrize(("entry", "window"), [
    ({"id": "m", "max_model_len": 32768}, 32768),  # vLLM, SGLang
    ({"id": "m", "meta": {"n_ctx_train": 8192, "n_vocab": 49152}}, 8192),  # llama.cpp server
    ({"id": "m", "context_length": 65536}, 65536),
    ({"id": "m", "context_window": 16000}, 16000),
    ({"id": "m", "max_context_length": 4096}, 4096),
    ({"id": "m", "max_model_len": "big"}, 131072),
    ({"id": "m", "max_model_len": -5}, 131072),
    ({"id": "m"}, 131072),
])
def test_the_context_window_is_read_once_from_models(replay, entry, window):
    listing = {"object": "list", "data": [{"id": "other", "max_model_len": 999999}, entry]}
    server = replay([], models_listing=listing)
    backend = OpenAICompatBackend(server.base_url, "m")
    assert backend.context_window == window and backend.context_window == window
    assert server.gets == ["/v1/models"]


def test_an_explicit_context_window_wins_and_asks_nothing(replay):
    server = replay([], models_listing={"data": [{"id": "m", "max_model_len": 32768}]})
    assert OpenAICompatBackend(server.base_url, "m", context_window=2048).context_window == 2048
    assert server.gets == []


def test_a_models_endpoint_that_is_garbage_means_the_default(replay):
    server = replay([], models_listing={"data": "nope"})
    assert OpenAICompatBackend(server.base_url, "m").context_window == 131072


def test_extra_body_is_merged_but_cannot_replace_core_fields(replay):
    server = replay([{"content": "ok"}])
    extra = {"chat_template_kwargs": {"enable_thinking": False}, "stream": False, "model": "evil"}
    assert isinstance(stream(server, extra_body=extra)[-1], Done)
    body = server.requests[0]
    assert body["chat_template_kwargs"] == {"enable_thinking": False} and body["stream"] is True and body["model"] == "m"


SECRET = "sk-test-0123456789abcdef"


@pytest.mark.parametrize("body", [
    sse(f"not json {SECRET}"),  # the path that skipped redaction before
    sse({"error": {"message": f"bad key {SECRET}"}}),
    sse({"choices": f"{SECRET}"}),
    f"Authorization: Bearer {SECRET}\n",
])
def test_the_key_never_appears_in_an_error(replay, body):
    server = replay([], faults=[raw(body)])
    backend = OpenAICompatBackend(server.base_url, "m", SECRET, max_retries=0)
    events = list(backend.stream([user("hi")], [], GenerationParams()))
    assert isinstance(events[-1], Error) and SECRET not in events[-1].message and "[redacted]" in events[-1].message


def test_an_http_error_body_echoing_the_key_or_another_secret_is_redacted(replay, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    body = json.dumps({"error": {"message": f"key {SECRET} and hf_abcdefghijklmnop rejected"}})
    server = replay([], faults=[RawReply(status=400, headers={"Content-Type": "application/json"}, body=body)] * 2)
    for key in (SECRET, None):
        error = list(OpenAICompatBackend(server.base_url, "m", key, max_retries=0).stream([user("hi")], [], GenerationParams()))[-1]
        assert "hf_abcdefghijklmnop" not in error.message
        assert SECRET not in error.message or key is None


def test_protocol_extras_the_session_needs(replay):
    server = replay([{"content": "ok"}])
    backend = OpenAICompatBackend(server.base_url, "m")
    assert OpenAICompatBackend.exact_token_count is False
    backend.drop_cache()  # nothing is cached client-side: the backend keeps working, and asked the server nothing
    assert server.requests == [] and server.gets == []
    assert isinstance(list(backend.stream([user("hi")], [], GenerationParams()))[-1], Done)
