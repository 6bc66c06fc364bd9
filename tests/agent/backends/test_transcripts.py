"""Contract tests: streaming transcripts of llama.cpp (llama-cpp-python and llama-server), vLLM, SGLang and the
DeepSeek API, replayed byte for byte over a loopback server through the real client.

Each file in transcripts/ says where it comes from (recorded from the real llama-cpp-python server, or written
from the server's documented format) and what the client must make of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsv4.agent.backends.base import GenerationParams
from dsv4.agent.backends.openai_compat import OpenAICompatBackend
from dsv4.agent.backends.replay_server import RawReply
from dsv4.agent.events import Done, Error, ReasoningDelta, TextDelta, Usage
from dsv4.agent.messages import ToolCall, user

TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.json"))


def test_every_server_family_is_covered():
    families = {path.name.split("_")[0] for path in TRANSCRIPTS}
    assert {"llamacpp", "llama", "vllm", "sglang", "deepseek"} <= families


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
def test_transcript(path, replay):
    record = json.loads(path.read_text())
    expect = record["expect"]
    server = replay([], faults=[RawReply.model_validate(record["reply"])])
    backend = OpenAICompatBackend(server.base_url, "m", max_retries=0)
    events = list(backend.stream([user("hi")], [], GenerationParams()))

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == expect.get("text", "")
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == expect.get("reasoning", "")
    calls = [e for e in events if isinstance(e, ToolCall)]
    wanted = expect.get("tool_calls", [])
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [(w["name"], w["arguments"]) for w in wanted]
    assert [c.id for c in calls] == [w.get("id", c.id) for w, c in zip(wanted, calls)]

    if "error" in expect:
        error = events[-1]
        assert isinstance(error, Error) and error.kind == expect["error"]["kind"], events
        assert expect["error"]["contains"] in error.message
        assert error.status_code == expect["error"].get("status_code", error.status_code)
        return
    assert isinstance(events[-1], Done) and events[-1].finish_reason == expect["finish_reason"]
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.model_dump(include=set(expect["usage"])) == expect["usage"]
