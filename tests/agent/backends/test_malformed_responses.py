"""Malformed server answers, served by a real loopback HTTP server through the real client: each one ends the
stream with one backend Error that has a message, and never raises."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from dsv4.agent.backends.base import GenerationParams
from dsv4.agent.backends.openai_compat import OpenAICompatBackend
from dsv4.agent.backends.replay_server import RawReply
from dsv4.agent.events import Done, Error
from dsv4.agent.messages import user


def sse(*payloads: object, done: bool = True) -> str:
    lines = [f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n" for p in payloads]
    return "".join(lines) + ("data: [DONE]\n\n" if done else "")


def chunk(delta: object = None, finish: object = None, **extra: object) -> dict:
    return {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}], **extra}


def raw(body: str, status: int = 200, content_type: str = "text/event-stream", **kwargs: object) -> RawReply:
    return RawReply(status=status, headers={"Content-Type": content_type}, body=body, **kwargs)


GZIP_GARBAGE = RawReply(headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"},
                        body=base64.b64encode(b"\x1f\x8b\x08\x00garbage-not-deflate" * 4).decode(), body_base64=True)
GZIP_TRUNCATED = RawReply(headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"},
                          body=base64.b64encode(gzip.compress(sse(chunk({"content": "hi"})).encode())[:15]).decode(),
                          body_base64=True)

MALFORMED: dict[str, RawReply] = {
    "data_is_a_list": raw(sse([1, 2, 3])),
    "data_is_null": raw(sse("null")),
    "data_is_a_number": raw(sse("42")),
    "data_is_a_string": raw(sse('"hello"')),
    "data_is_true": raw(sse("true")),
    "data_not_json": raw(sse("this is not json")),
    "data_truncated_json": raw(sse('{"choices": [{"delta": {"content": "a')),
    "choices_is_a_string": raw(sse({"choices": "nope"})),
    "choices_is_a_number": raw(sse({"choices": 7})),
    "choice_is_a_string": raw(sse({"choices": ["x"]})),
    "delta_is_a_list": raw(sse({"choices": [{"delta": [1]}]})),
    "content_is_a_number": raw(sse(chunk({"content": 12}))),
    "content_is_an_object": raw(sse(chunk({"content": {"a": 1}}))),
    "reasoning_is_a_list": raw(sse(chunk({"reasoning_content": ["x"]}))),
    "tool_calls_is_a_dict": raw(sse(chunk({"tool_calls": {"index": 0}}))),
    "tool_call_index_is_a_word": raw(sse(chunk({"tool_calls": [{"index": "first", "function": {"name": "x"}}]}))),
    "tool_call_function_is_a_string": raw(sse(chunk({"tool_calls": [{"index": 0, "function": "read_file"}]}))),
    "tool_call_name_is_a_number": raw(sse(chunk({"tool_calls": [{"index": 0, "function": {"name": 5}}]}))),
    "tool_call_arguments_is_an_object": raw(sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": {"a": 1}}}]}))),
    "usage_is_a_string": raw(sse(chunk({"content": "x"}, "stop", usage="lots"))),
    "usage_tokens_are_words": raw(sse(chunk({}, "stop", usage={"prompt_tokens": "many"}))),
    "finish_reason_is_a_number": raw(sse(chunk({}, 3))),
    "error_mid_stream": raw(sse(chunk({"content": "a"}), {"error": {"message": "model crashed"}})),
    "error_as_plain_string": raw(sse({"error": "out of memory"})),
    "gzip_garbage": GZIP_GARBAGE,
    "gzip_truncated": GZIP_TRUNCATED,
    "html_page_200": raw("<!doctype html><html><body>Welcome to nginx</body></html>", content_type="text/html"),
    "html_page_as_event_stream": raw("<html><body>login</body></html>\n"),
    "json_document_not_a_stream": raw(json.dumps({"choices": [{"message": {"content": "hi"}}]}) + "\n",
                                      content_type="application/json"),
    "json_error_document_as_stream": raw(json.dumps({"error": {"message": "maximum context length is 2048 tokens"}})),
    "plain_text_body": raw("Internal Server Error\n", content_type="text/plain"),
    "empty_body": raw(""),
    "only_comments_then_end": raw(": ping\n\n: ping\n\n"),
    "no_done_no_finish": raw(sse(chunk({"content": "half"}), done=False)),
    "cut_mid_line": raw('data: {"choices": [{"delta": {"conte', close_early=True),
    "html_404": raw("<html><h1>404 Not Found</h1></html>", status=404, content_type="text/html"),
    "html_502_from_a_proxy": raw("<html>Bad Gateway</html>", status=400, content_type="text/html"),
    "error_body_is_a_list": raw("[1, 2]", status=400, content_type="application/json"),
    "error_body_is_binary": RawReply(status=422, headers={"Content-Type": "application/octet-stream"},
                                     body=base64.b64encode(bytes(range(256))).decode(), body_base64=True),
    "binary_stream": RawReply(body=base64.b64encode(b"\xff\xfe\x00\x01" * 64).decode(), body_base64=True),
    "nul_bytes_in_data": raw("data: \x00\x00\x00\n\n"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_answer_is_one_error_event_with_a_message(name, replay):
    server = replay([], faults=[MALFORMED[name]])
    backend = OpenAICompatBackend(server.base_url, "m", timeout_s=5, max_retries=0)
    events = list(backend.stream([user("hi")], [], GenerationParams(deadline=None)))
    assert not any(isinstance(e, Done) for e in events), events
    assert isinstance(events[-1], Error) and len(events[-1].message) > 20, events
    assert sum(isinstance(e, Error) for e in events) == 1


def test_the_fuzz_covers_at_least_thirty_shapes():
    assert len(MALFORMED) >= 30


def test_an_html_answer_suggests_v1(replay):
    server = replay([], faults=[MALFORMED["html_404"], MALFORMED["html_page_200"]])
    bare = server.base_url.removesuffix("/v1")
    backend = OpenAICompatBackend(bare, "m", timeout_s=5, max_retries=0)
    for _ in range(2):
        error = list(backend.stream([user("hi")], [], GenerationParams()))[-1]
        assert isinstance(error, Error) and f"--base-url {bare}/v1" in error.message


def test_a_json_error_document_where_a_stream_belongs_shows_its_message(replay):
    server = replay([], faults=[MALFORMED["json_error_document_as_stream"]])
    error = list(OpenAICompatBackend(server.base_url, "m", max_retries=0).stream([user("hi")], [], GenerationParams()))[-1]
    assert isinstance(error, Error) and error.kind == "http" and "maximum context length is 2048 tokens" in error.message


def test_a_string_tool_call_index_that_is_a_number_is_accepted(replay):
    body = sse(chunk({"tool_calls": [{"index": "0", "id": "a", "function": {"name": "read_file", "arguments": "{}"}}]}),
               chunk({}, "tool_calls"))
    server = replay([], faults=[raw(body)])
    events = list(OpenAICompatBackend(server.base_url, "m", max_retries=0).stream([user("hi")], [], GenerationParams()))
    assert isinstance(events[-1], Done) and events[0].name == "read_file"
