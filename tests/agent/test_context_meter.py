"""The context meter: the server's last prompt count plus an estimate of what was added since, or the whole
estimated when the conversation changed under it; the reserved output and the tools are counted."""

from __future__ import annotations

import json

from dsv4.agent.backends.base import estimate_tokens
from dsv4.agent.backends.scripted import ScriptedBackend
from dsv4.agent.context_meter import ContextMeter
from dsv4.agent.messages import system, tool_result, user

TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]


def test_the_reported_count_is_the_base_and_only_the_new_messages_are_estimated():
    meter = ContextMeter(ScriptedBackend([]), window=10_000, reserved_output=500)
    sent = [system("rules " * 100), user("do it")]
    first = meter.measure(sent, TOOLS)
    assert first.used == estimate_tokens(sent) + len(json.dumps(TOOLS, sort_keys=True)) // 4 + 1 + 500
    assert not first.exact and first.window == 10_000
    meter.observe(sent, 1234)  # what the server said the request took
    grown = sent + [tool_result("c1", "read_file", "x" * 4000)]
    assert meter.measure(grown, TOOLS).used == 1234 + estimate_tokens(grown[2:]) + 500
    compacted = [sent[0], user("summary"), grown[2]]  # the conversation changed under the count: estimate it all
    assert meter.measure(compacted, TOOLS).used == estimate_tokens(compacted) + meter.tools_tokens(TOOLS) + 500


def test_the_window_override_and_the_default_reserve():
    backend = ScriptedBackend([], context_window=64_000)
    assert ContextMeter(backend).window == 64_000 and ContextMeter(backend).reserved_output == 4096
    small = ContextMeter(backend, window=2000)
    assert small.window == 2000 and small.reserved_output == 250
    reading = small.measure([system("y" * 8000)], [])
    assert not reading.fits and reading.share > 1
