"""The run's deadline holds on wall-clock time whatever the server does, and cancel() ends a stream from another thread.

The bounds below are generous (the deadline plus seconds): they tell "stopped at the deadline" from "waited
for the server" (minutes or forever on the old client), they do not measure speed (evals/deadline_bench.py does).
"""

from __future__ import annotations

import threading
import time

from dsv4.agent.backends.base import GenerationParams
from dsv4.agent.backends.openai_compat import RETRY_AFTER_CAP_S, OpenAICompatBackend
from dsv4.agent.events import Done, Error, TextDelta
from dsv4.agent.messages import user

TEXT_TURN = {"content": "All done."}
MARGIN_S = 4.0


def run_until(backend: OpenAICompatBackend, seconds: float) -> tuple[list, float]:
    started = time.monotonic()
    events = list(backend.stream([user("hi")], [], GenerationParams(deadline=started + seconds)))
    return events, time.monotonic() - started


def test_keep_alive_comments_forever_stop_at_the_deadline(replay):
    server = replay([TEXT_TURN], faults=["pings"])
    events, elapsed = run_until(OpenAICompatBackend(server.base_url, "m", max_retries=0), 1.0)
    assert [type(e) for e in events] == [Error] and events[0].kind == "timeout"
    assert "deadline" in events[0].message and elapsed < 1.0 + MARGIN_S


def test_a_300_second_first_byte_stops_at_the_deadline(replay):
    server = replay([TEXT_TURN], faults=["slow:300"])
    events, elapsed = run_until(OpenAICompatBackend(server.base_url, "m", timeout_s=600, max_retries=3), 1.0)
    assert [type(e) for e in events] == [Error] and events[0].kind == "timeout"
    assert elapsed < 1.0 + MARGIN_S and len(server.requests) == 1


def test_a_day_long_retry_after_is_not_waited_for(replay):
    server = replay([TEXT_TURN], faults=["retry_after:86400"])
    events, elapsed = run_until(OpenAICompatBackend(server.base_url, "m", max_retries=3), 5.0)
    assert [type(e) for e in events] == [Error] and events[0].kind == "timeout"
    assert "86400" in events[0].message and elapsed < 5.0 + MARGIN_S and len(server.requests) == 1


def test_a_short_retry_after_inside_the_deadline_is_honoured(replay):
    server = replay([TEXT_TURN], faults=["retry_after:0.3"])
    backend = OpenAICompatBackend(server.base_url, "m", max_retries=3)
    events, elapsed = run_until(backend, 10.0)
    assert isinstance(events[-1], Done) and backend.retries_done == 1 and elapsed >= 0.3


def test_retry_after_without_a_deadline_is_capped_and_cancel_interrupts_the_wait(replay):
    server = replay([TEXT_TURN], faults=["retry_after:86400"])
    backend = OpenAICompatBackend(server.base_url, "m", max_retries=3)
    threading.Timer(0.5, backend.cancel).start()
    started = time.monotonic()
    events = list(backend.stream([user("hi")], [], GenerationParams()))
    assert isinstance(events[-1], Error) and "cancelled" in events[-1].message
    assert time.monotonic() - started < RETRY_AFTER_CAP_S


def test_cancel_from_another_thread_ends_an_endless_stream(replay):
    server = replay([TEXT_TURN], faults=["pings"])
    backend = OpenAICompatBackend(server.base_url, "m", max_retries=0)
    threading.Timer(0.5, backend.cancel).start()
    started = time.monotonic()
    events = list(backend.stream([user("hi")], [], GenerationParams()))
    assert [type(e) for e in events] == [Error] and "cancelled" in events[0].message
    assert time.monotonic() - started < 0.5 + MARGIN_S


def test_cancel_while_waiting_for_the_first_byte(replay):
    server = replay([TEXT_TURN], faults=["slow:300"])
    backend = OpenAICompatBackend(server.base_url, "m", max_retries=0)
    threading.Timer(0.5, backend.cancel).start()
    started = time.monotonic()
    events = list(backend.stream([user("hi")], [], GenerationParams()))
    assert [type(e) for e in events] == [Error] and time.monotonic() - started < 0.5 + MARGIN_S


def test_a_stream_after_a_cancel_works_again(replay):
    server = replay([TEXT_TURN, TEXT_TURN], faults=["pings"])
    backend = OpenAICompatBackend(server.base_url, "m", max_retries=0)
    threading.Timer(0.3, backend.cancel).start()
    assert isinstance(list(backend.stream([user("hi")], [], GenerationParams()))[-1], Error)
    events = list(backend.stream([user("hi")], [], GenerationParams()))
    assert isinstance(events[-1], Done) and "".join(e.text for e in events if isinstance(e, TextDelta)) == "All done."


def test_a_deadline_already_passed_sends_nothing(replay):
    server = replay([TEXT_TURN])
    events = list(OpenAICompatBackend(server.base_url, "m").stream(
        [user("hi")], [], GenerationParams(deadline=time.monotonic() - 1)))
    assert [e.kind for e in events] == ["timeout"] and server.requests == []


def test_headless_timeout_stops_a_server_that_only_sends_keep_alives(replay, calc_repo):
    """End to end: the loop hands its deadline to the backend (agent/loop.py `_ask_model`)."""
    import json

    from ...conftest import run_cli

    server = replay([TEXT_TURN], faults=["pings"])
    proc = run_cli(["run", "--headless", "say done", "--base-url", server.base_url, "--model", "m", "--timeout", "2",
                    "--output-format", "json"], cwd=calc_repo, timeout=90)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["status"] == "budget_exhausted" and report["budget_exhausted"] == "timeout"
