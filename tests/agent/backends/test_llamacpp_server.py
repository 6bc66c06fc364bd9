"""Against llama-cpp-python's REAL server (slow): tool calls arrive whole although it repeats the function name in
every chunk, usage is estimated because it sends none, and a headless run drives the real tool.

Needs llama-cpp-python built from source in evals/.venv-llamacpp (several minutes):
    python3 -m venv evals/.venv-llamacpp
    CMAKE_ARGS="-DGGML_NATIVE=ON" evals/.venv-llamacpp/bin/pip install "llama-cpp-python[server]" --no-binary llama-cpp-python
and the SmolLM2 GGUF that scripts/setup installs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dsv4.agent.backends.base import GenerationParams
from dsv4.agent.backends.openai_compat import OpenAICompatBackend
from dsv4.agent.events import Done, TextDelta, Usage
from dsv4.agent.messages import ToolCall, user

from ...conftest import run_cli

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
VENV_PYTHON = REPO / "evals" / ".venv-llamacpp" / "bin" / "python"
READ_FILE = {"type": "function", "function": {"name": "read_file", "description": "Read a file of the repository",
                                              "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                                                             "required": ["path"]}}}
FORCE_READ_FILE = {"tool_choice": {"type": "function", "function": {"name": "read_file"}}}


def _gguf() -> Path:
    from dsv4.runtime.resolve import ModelNotFound, resolve_model

    try:
        return resolve_model("smollm2-135m").path
    except ModelNotFound as exc:
        pytest.skip(f"the SmolLM2 GGUF is not installed (scripts/setup installs it): {exc}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llamacpp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not VENV_PYTHON.exists():
        pytest.skip(f"llama-cpp-python is not installed in {VENV_PYTHON.parent.parent} (see this module's docstring)")
    port = _free_port()
    log = (tmp_path_factory.mktemp("llamacpp") / "server.log").open("w")  # a file, not a pipe: its model-load chatter would fill one
    server = subprocess.Popen(
        [str(VENV_PYTHON), "-m", "llama_cpp.server", "--model", str(_gguf()), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096", "--chat_format", "chatml-function-calling", "--model_alias", "smol", "--n_threads", "2"],
        stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"llama-cpp-python's server exited: {Path(log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("llama-cpp-python's server did not come up within 120 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_a_forced_tool_call_arrives_whole_with_an_estimated_usage(llamacpp_url):
    backend = OpenAICompatBackend(llamacpp_url, "smol", extra_body=FORCE_READ_FILE, timeout_s=120)
    events = list(backend.stream([user("Read the file calc/__init__.py")], [READ_FILE],
                                 GenerationParams(max_tokens=60, temperature=0.0, seed=1)))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert isinstance(events[-1], Done), events[-1]
    assert [c.name for c in calls] == ["read_file"]  # the old client made it read_fileread_file...
    assert isinstance(json.loads(calls[0].arguments), dict)
    usage = next(e for e in events if isinstance(e, Usage))
    assert usage.estimated and usage.prompt_tokens > 0 and usage.completion_tokens > 0


def test_plain_text_streams_and_the_context_window_defaults(llamacpp_url):
    backend = OpenAICompatBackend(llamacpp_url, "smol", timeout_s=120)
    events = list(backend.stream([user("Say hello")], [], GenerationParams(max_tokens=8, temperature=0.0)))
    assert isinstance(events[-1], Done) and "".join(e.text for e in events if isinstance(e, TextDelta))
    assert backend.context_window == 131072  # llama-cpp-python's /v1/models reports no window


def test_a_headless_run_calls_the_real_tool(llamacpp_url, calc_repo, dsv4_home):
    dsv4_home.mkdir(parents=True, exist_ok=True)
    (dsv4_home / "config.toml").write_text(
        'extra_body = { tool_choice = { type = "function", function = { name = "read_file" } } }\nmax_output_tokens = 60\n')
    proc = run_cli(["run", "--headless", "Read calc/__init__.py", "--base-url", llamacpp_url, "--model", "smol",
                    "--max-steps", "2", "--output-format", "stream-json"], cwd=calc_repo, timeout=300)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    requested = [e["name"] for e in events if e.get("type") == "tool_requested"]
    assert requested and set(requested) == {"read_file"}, proc.stdout[-2000:] + proc.stderr[-2000:]
