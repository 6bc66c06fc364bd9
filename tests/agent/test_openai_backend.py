from __future__ import annotations

import json

from dsv4.agent.backends.base import GenerationParams
from dsv4.agent.backends.openai_compat import OpenAICompatBackend
from dsv4.agent.events import Done, Error, ReasoningDelta, TextDelta, Usage
from dsv4.agent.messages import Message, ToolCall, user

TOOL_TURN = {"content": "Reading.", "tool_calls": [{"name": "read_file", "arguments": {"path": "calc/__init__.py", "limit": 5}}]}
TEXT_TURN = {"content": "All done, nothing else to change."}


def collect(backend: OpenAICompatBackend, messages: list[Message] | None = None) -> list:
    return list(backend.stream(messages or [user("hi")], [], GenerationParams(temperature=0.0)))


def backend_for(server, **kwargs) -> OpenAICompatBackend:
    options = {"timeout_s": 5, "backoff_s": 0.01, "max_retries": 3} | kwargs
    return OpenAICompatBackend(server.base_url, "replay-model", **options)


def test_streams_text_tool_call_deltas_and_usage_with_cached_tokens(replay):
    server = replay([TOOL_TURN], cached_tokens=7)
    events = collect(backend_for(server))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    calls = [e for e in events if isinstance(e, ToolCall)]
    usage = [e for e in events if isinstance(e, Usage)]
    assert text == "Reading."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("read_file", {"path": "calc/__init__.py", "limit": 5})]
    assert usage and usage[0].prompt_tokens > 0 and usage[0].cached_prompt_tokens == 7
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "tool_calls"
    body = server.requests[0]
    assert body["stream"] is True and body["model"] == "replay-model" and body["temperature"] == 0.0


def test_429_then_success_is_retried(replay):
    server = replay([TEXT_TURN], faults=["429", "429"])
    backend = backend_for(server)
    events = collect(backend)
    assert isinstance(events[-1], Done)
    assert backend.retries_done == 2 and len(server.requests) == 3


def test_repeated_500_gives_up_with_an_error_event(replay):
    server = replay([TEXT_TURN], faults=["500"] * 10)
    events = collect(backend_for(server, max_retries=2))
    assert len(events) == 1 and isinstance(events[0], Error)
    assert "HTTP 500" in events[0].message and "3 attempts" in events[0].message
    assert len(server.requests) == 3


def test_stream_cut_midway_is_an_error_not_a_silent_resume(replay):
    long_turn = {"content": "x" * 400}
    server = replay([long_turn, TEXT_TURN], faults=["cut"])
    events = collect(backend_for(server))
    assert isinstance(events[-1], Error) and events[-1].kind == "stream_cut"
    assert len(server.requests) == 1  # nothing was retried behind the caller's back


def test_slow_first_byte_times_out_and_retries(replay):
    server = replay([TEXT_TURN, TEXT_TURN], faults=["slow:3"])
    backend = backend_for(server, timeout_s=0.5)
    events = collect(backend)
    assert isinstance(events[-1], Done)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == TEXT_TURN["content"]
    assert backend.retries_done == 1


def test_bad_key_is_an_auth_error_that_does_not_echo_the_key(replay):
    server = replay([TEXT_TURN], api_key="right-key")
    events = collect(OpenAICompatBackend(server.base_url, "m", "wrong-key-123", max_retries=0))
    assert isinstance(events[0], Error) and events[0].kind == "auth" and events[0].status_code == 401
    assert "wrong-key-123" not in events[0].message


def test_unreachable_url_is_a_connect_error(replay):
    backend = OpenAICompatBackend("http://127.0.0.1:9/v1", "m", max_retries=1, backoff_s=0.01, connect_timeout_s=1)
    events = collect(backend)
    assert isinstance(events[0], Error) and "cannot connect" in events[0].message and events[0].kind == "connect"


def test_reasoning_content_is_streamed_and_sent_back_on_tool_call_turns(replay):
    turn = {"reasoning_content": "think first", **TOOL_TURN}
    server = replay([turn, TEXT_TURN])
    backend = backend_for(server)
    events = collect(backend)
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "think first"
    call = next(e for e in events if isinstance(e, ToolCall))
    history = [user("hi"), Message(role="assistant", content="Reading.", tool_calls=[call], reasoning_content="think first"),
               Message(role="tool", tool_call_id=call.id, name=call.name, content="1\tdef add")]
    collect(backend, history)
    sent = server.requests[1]["messages"]
    assert sent[1]["reasoning_content"] == "think first"
    assert sent[1]["tool_calls"][0]["function"]["name"] == "read_file"
    # Only standard fields go out: no reasoning_content where the server gave none, no tool `name` key.
    assert "reasoning_content" not in sent[0] and set(sent[2]) == {"role", "content", "tool_call_id"}
