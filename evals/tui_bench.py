"""TUI responsiveness: time to an interactive prompt, streaming throughput, and whether the UI thread stays free.

A headless Textual app (App.run_test) over a real git repository of `--files` Python files and the scripted
model. Measured:

- interactive_s: from creating the app to the chat screen mounted with the prompt focused (what a user can
  type into; the model keeps loading in the background and a prompt typed now is queued);
- ready_s: until the session is open (model, memory, repository block, watcher started);
- flood: a reply of `--chunks` deltas sent as fast as the backend can: chunks per second rendered;
- paced: a long reply (`--paced-chars`, 20,000 characters) streamed at `--rate` chunks per second (a fast model;
  12 characters a chunk) during which keys are pressed in the prompt: key latency (press until the editor shows
  it), median, 95th percentile and worst, over the whole reply and over its last quarter (where a renderer whose
  cost grows with the reply is slowest);
- loop stall: the longest gap of a 10 ms ticker on the UI's event loop during startup and during the stream
  (how long the UI thread was blocked at worst);
- theme switch: with both replies in the transcript, from setting another theme until the replies on screen are
  drawn again in its colours (a reply off screen waits until it is scrolled into view), and the worst stall.

- with `--model NAME` (e.g. smollm2-135m): startup only, with that in-process model loading in the background
  (interactive_s, ready_s, the startup stall and what the progress line said while loading).

    python evals/tui_bench.py [--files 500] [--chunks 2000] [--paced-chars 20000] [--out evals/results/tui_bench.json]
    python evals/tui_bench.py --model smollm2-135m [--out evals/results/tui_bench_inprocess.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_repo(root: Path, files: int) -> None:
    for n in range(files):
        folder = root / "pkg" / f"m{n // 50}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{n}.py").write_text(f"def f{n}(x):\n    return x + {n}\n\n\nclass C{n}:\n    pass\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init"], cwd=root, check=True)


def markdown_reply(size: int) -> str:
    """A long answer shaped like a model's: prose paragraphs with **bold** and `code`, a list now and then,
    a fenced code block now and then (about one Markdown block per 500 characters)."""
    prose = ("The function `parse_config` reads the file once and caches the result, so a **second call** is "
             "cheap; the cache is keyed by the resolved path, which means a symlinked config is read once too. ")
    blocks, n = [], 0
    while sum(len(b) for b in blocks) < size:
        n += 1
        if n % 5 == 0:
            blocks.append("```python\ndef parse_config(path):\n    return load(path.resolve())\n```\n\n")
        elif n % 3 == 0:
            blocks.append("- first, the path is resolved\n- then the cache is checked\n- last, the file is read\n\n")
        else:
            blocks.append(prose * 3 + "\n\n")
    return "".join(blocks)[:size]


class Ticker:
    """Largest gap between ticks of a short interval on the event loop: how long the UI thread was blocked."""

    def __init__(self, app, interval: float = 0.01) -> None:
        self.interval = interval
        self.last = time.perf_counter()
        self.worst = 0.0
        self.timer = app.set_interval(interval, self.tick)

    def tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last - self.interval)
        self.last = now

    def reset(self) -> None:
        self.last, self.worst = time.perf_counter(), 0.0


class PacedBackend:
    """The scripted backend with a pause between events, like a model generating at `rate` chunks per second."""

    def __init__(self, inner, rate: float) -> None:
        self.inner, self.rate = inner, rate

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stream(self, messages, tools, params):
        for event in self.inner.stream(messages, tools, params):
            time.sleep(1 / self.rate)
            yield event


async def stream_reply(app, pilot, editor, reply: str, press_keys: bool) -> tuple[float, list[tuple[float, float]]]:
    """Seconds until the reply is drawn whole, and (when pressed, seconds since the send) a key latency each."""
    from textual import events

    from dsv4.tui.widgets.assistant_message import AssistantMessage

    editor.set_value("stream please")
    count = len(app.chat.query(AssistantMessage))
    sent = time.perf_counter()
    await pilot.press("enter")
    latencies = []
    while press_keys and (app.chat.busy or len(app.chat.query(AssistantMessage)) == count):
        # The key goes into the app's queue as a terminal's would; Pilot.press would also wait for idle.
        before = editor.text
        pressed = time.perf_counter()
        editor.post_message(events.Key("k", "k"))
        while editor.text == before:
            await asyncio.sleep(0.001)
        latencies.append((pressed - sent, time.perf_counter() - pressed))
        await asyncio.sleep(0.05)  # a fast typist: 20 keys a second
    while app.chat.busy or len(app.chat.query(AssistantMessage)) == count:
        await pilot.pause(0.002)
    await app.workers.wait_for_complete()
    assert app.chat.query(AssistantMessage)[-1].text == reply
    return time.perf_counter() - sent, latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def bench(files: int, chunks: int, rate: float, paced_chars: int) -> dict:
    from dsv4.agent.backends.script import ScriptedTurn
    from dsv4.agent.backends.scripted import ScriptedBackend
    from dsv4.agent.config import load_settings
    from dsv4.agent.repo import find_repo
    from dsv4.tui.app import DSV4App
    from dsv4.tui.widgets.prompt_editor import PromptEditor

    root = Path(tempfile.mkdtemp(prefix="tui-bench-repo-"))
    make_repo(root, files)
    # 12-character deltas (the scripted backend's chunk size), a Markdown reply with lists and code.
    reply = markdown_reply(chunks * 12)
    paced_reply = markdown_reply(paced_chars)
    backend = PacedBackend(ScriptedBackend([ScriptedTurn(content=reply), ScriptedTurn(content=paced_reply)]), rate)
    backend.rate = 1e9  # the first reply floods
    repo = find_repo(root)
    settings = load_settings(repo.root, permission_mode="full-auto")
    started = time.perf_counter()
    app = DSV4App(repo, settings, backend=backend)
    result: dict = {"files": files, "chunks": chunks, "rate": rate, "paced_chars": paced_chars}
    async with app.run_test(size=(120, 40)) as pilot:
        ticker = Ticker(app)
        while not (app.chat is not None and app.chat.is_mounted and app.focused is app.chat.query_one(PromptEditor)):
            await pilot.pause(0.001)
        result["interactive_s"] = time.perf_counter() - started
        while app.chat.session is None:
            await pilot.pause(0.005)
        result["ready_s"] = time.perf_counter() - started
        await app.workers.wait_for_complete()
        result["startup_worst_stall_ms"] = ticker.worst * 1000
        editor = app.chat.query_one(PromptEditor)
        ticker.reset()
        elapsed, _ = await stream_reply(app, pilot, editor, reply, press_keys=False)
        result["flood_s"] = elapsed
        result["chunks_per_s"] = chunks / elapsed
        result["flood_worst_stall_ms"] = ticker.worst * 1000
        backend.rate = rate
        ticker.reset()
        elapsed, pressed = await stream_reply(app, pilot, editor, paced_reply, press_keys=True)
        result["paced_s"] = elapsed
        latencies = [latency for _, latency in pressed]
        last_quarter = [latency for at, latency in pressed if at >= 0.75 * elapsed] or latencies
        result["key_latency_ms_median"] = statistics.median(latencies) * 1000
        result["key_latency_ms_p95"] = percentile(latencies, 0.95) * 1000
        result["key_latency_ms_worst"] = max(latencies) * 1000
        result["key_latency_ms_worst_last_quarter"] = max(last_quarter) * 1000
        result["keys_pressed_while_streaming"] = len(latencies)
        result["paced_worst_stall_ms"] = ticker.worst * 1000
        result.update(await switch_theme(app, pilot, ticker))
    return result


async def switch_theme(app, pilot, ticker: Ticker) -> dict:
    from dsv4.tui.widgets.assistant_message import AssistantMessage
    from dsv4.tui.widgets.transcript import Transcript

    transcript = app.chat.query_one(Transcript)
    replies = list(app.chat.query(AssistantMessage))
    shown = [reply for reply in replies if reply.region.overlaps(transcript.region)]
    before = [reply._style for reply in shown]
    ticker.reset()
    started = time.perf_counter()
    app.theme = "textual-light"
    # A reply on screen takes the new theme's colours when it draws its lines again (AssistantMessage._in_colours);
    # one off screen waits until it is scrolled into view.
    while any(reply._style is None or reply._style is old for reply, old in zip(shown, before)):
        await pilot.pause(0.001)
    await pilot.pause()  # the frame with the lines drawn again
    return {"theme_switch_ms": (time.perf_counter() - started) * 1000, "theme_switch_worst_stall_ms": ticker.worst * 1000,
            "theme_switch_chars": sum(len(reply.text) for reply in replies), "theme_switch_replies_shown": len(shown)}


async def startup_with_model(files: int, model: str) -> dict:
    """The real in-process backend (no backend handed in): how soon the prompt takes keys while the model loads."""
    from dsv4.agent.config import load_settings
    from dsv4.agent.repo import find_repo
    from dsv4.tui.app import DSV4App
    from dsv4.tui.widgets.progress_line import ProgressLine
    from dsv4.tui.widgets.prompt_editor import PromptEditor

    root = Path(tempfile.mkdtemp(prefix="tui-bench-repo-"))
    make_repo(root, files)
    repo = find_repo(root)
    settings = load_settings(repo.root, permission_mode="full-auto", model=model)
    started = time.perf_counter()
    app = DSV4App(repo, settings)
    result: dict = {"files": files, "model": model, "progress_labels": []}
    async with app.run_test(size=(120, 40)) as pilot:
        ticker = Ticker(app)
        while not (app.chat is not None and app.chat.is_mounted and app.focused is app.chat.query_one(PromptEditor)):
            await pilot.pause(0.001)
        result["interactive_s"] = time.perf_counter() - started
        line = app.chat.query_one(ProgressLine)
        while app.chat.session is None:
            label = line.label if line.has_class("active") else ""
            if label and label not in result["progress_labels"]:
                result["progress_labels"].append(label)
            await pilot.pause(0.005)
        result["ready_s"] = time.perf_counter() - started
        await app.workers.wait_for_complete()
        result["startup_worst_stall_ms"] = ticker.worst * 1000
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="chunks per second of the paced reply")
    parser.add_argument("--paced-chars", type=int, default=20_000, help="length of the paced reply")
    parser.add_argument("--model", help="startup only, with this in-process model loading in the background")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ["DSV4_HOME"] = tempfile.mkdtemp(prefix="tui-bench-home-")
    os.environ.setdefault("LANCEDB_LOG", "error")
    if args.model:
        result = asyncio.run(startup_with_model(args.files, args.model))
        result["machine"] = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
        print(f"interactive prompt, {args.model} loading  {result['interactive_s']:.3f} s")
        print(f"session ready                          {result['ready_s']:.3f} s")
        print(f"worst UI stall, startup                {result['startup_worst_stall_ms']:.0f} ms")
        labels = result["progress_labels"]
        shown = labels if len(labels) <= 6 else [*labels[:3], f"... {len(labels) - 6} more ...", *labels[-3:]]
        print(f"progress shown                         {' | '.join(shown)}")
        out = args.out or REPO / "evals" / "results" / "tui_bench_inprocess.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
        return 0
    args.out = args.out or REPO / "evals" / "results" / "tui_bench.json"
    result = asyncio.run(bench(args.files, args.chunks, args.rate, args.paced_chars))
    result["machine"] = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                         "load_average": os.getloadavg()}
    result["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = [("interactive prompt", f"{result['interactive_s']:.3f} s"), ("session ready", f"{result['ready_s']:.3f} s"),
            ("worst UI stall, startup", f"{result['startup_worst_stall_ms']:.0f} ms"),
            ("flood", f"{result['chunks']} chunks in {result['flood_s']:.2f} s = {result['chunks_per_s']:.0f} chunks/s"),
            ("worst UI stall, flood", f"{result['flood_worst_stall_ms']:.0f} ms"),
            (f"key latency, {result['paced_chars']:,} chars at {result['rate']:.0f} chunks/s",
             f"median {result['key_latency_ms_median']:.0f} ms, p95 {result['key_latency_ms_p95']:.0f} ms, "
             f"worst {result['key_latency_ms_worst']:.0f} ms ({result['keys_pressed_while_streaming']} keys)"),
            ("worst key latency, last quarter", f"{result['key_latency_ms_worst_last_quarter']:.0f} ms"),
            ("worst UI stall, paced stream", f"{result['paced_worst_stall_ms']:.0f} ms"),
            (f"theme switch, {result['theme_switch_chars']:,} chars of replies ({result['theme_switch_replies_shown']} on screen)",
             f"{result['theme_switch_ms']:.0f} ms (worst stall {result['theme_switch_worst_stall_ms']:.0f} ms)")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
