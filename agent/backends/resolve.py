"""Which backend a command talks to, from flags and config (docs/architecture.md, "Backends").

Precedence, first match wins:
1. `--backend scripted` / `script`: the scripted backend.
2. An explicit endpoint: `base_url` (flag, config, `DSV4_BASE_URL`) or `--backend openai` (its URL falling
   back to `OPENAI_BASE_URL`).
3. An explicit in-process model: `--model` / `model` or `--backend inprocess`.
4. `DEEPSEEK_API_KEY`: the DeepSeek API.
5. `OPENAI_BASE_URL` (or `OPENAI_API_KEY` alone: https://api.openai.com/v1), as the OpenAI SDK reads them;
   the model is the one the server lists first (single-model servers such as llama.cpp, vLLM, SGLang).
6. The small local default model, in-process.
The key: `--api-key-env VAR` > `DEEPSEEK_API_KEY` for deepseek.com hosts > `OPENAI_API_KEY` for the
`OPENAI_BASE_URL` endpoint or openai.com hosts; any other endpoint gets no key unless named, so a key
is never sent to a URL it was not meant for.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from ..config import DEEPSEEK_BASE_URL, DEEPSEEK_DEFAULT_MODEL, LOCAL_DEFAULT_MODEL, Settings
from ..progress import ProgressCallback
from .base import Backend


class BackendConfigError(Exception):
    """The model flags or config do not name a usable backend; the message says what to do."""


OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _openai_env_url() -> str | None:
    """The endpoint the OpenAI environment variables name, if any."""
    if os.environ.get("OPENAI_BASE_URL"):
        return os.environ["OPENAI_BASE_URL"]
    return OPENAI_DEFAULT_BASE_URL if os.environ.get("OPENAI_API_KEY") else None


def describe(settings: Settings) -> str:
    """A one-line description of the backend `make_backend` would build, for status bars and reports."""
    if settings.backend == "scripted" or settings.script:
        return f"scripted ({settings.script})"
    if settings.base_url or settings.backend == "openai":
        return f"{settings.model} @ {settings.base_url or _openai_env_url()}"
    if settings.model or settings.backend == "inprocess":
        return f"{settings.model or LOCAL_DEFAULT_MODEL} (in-process)"
    if os.environ.get("DEEPSEEK_API_KEY"):
        return f"{DEEPSEEK_DEFAULT_MODEL} @ {DEEPSEEK_BASE_URL}"
    if _openai_env_url():
        return f"the model served @ {_openai_env_url()} (from OPENAI_BASE_URL/OPENAI_API_KEY)"
    return f"{LOCAL_DEFAULT_MODEL} (in-process, the small default model)"


def check_model(settings: Settings) -> None:
    """Raise BackendConfigError now, cheaply (no weights read), for an in-process model that cannot load, so a
    front end that loads the model in the background (the TUI) fails with the same one line as headless."""
    if settings.backend == "scripted" or settings.script or settings.base_url or settings.backend == "openai":
        return
    if not (settings.model or settings.backend == "inprocess"):
        return
    from ...runtime.errors import RuntimeModelError
    from ...runtime.resolve import resolve_model

    try:
        resolve_model(settings.model or LOCAL_DEFAULT_MODEL)
    except RuntimeModelError as exc:
        raise BackendConfigError(str(exc)) from None


def make_backend(settings: Settings, on_progress: ProgressCallback | None = None) -> Backend:
    """`on_progress` hears how loading an in-process model goes (the other backends load nothing)."""
    if settings.backend == "scripted" or settings.script:
        return _scripted(settings)
    if settings.base_url or settings.backend == "openai":
        base_url = settings.base_url or _openai_env_url()
        return _openai(settings, base_url, settings.model, _api_key(settings, base_url))
    if settings.model or settings.backend == "inprocess":
        return _inprocess(settings, settings.model or LOCAL_DEFAULT_MODEL, on_progress)
    if os.environ.get("DEEPSEEK_API_KEY"):
        return _openai(settings, DEEPSEEK_BASE_URL, DEEPSEEK_DEFAULT_MODEL, os.environ["DEEPSEEK_API_KEY"])
    if env_url := _openai_env_url():
        return _openai(settings, env_url, None, _api_key(settings, env_url))
    return _inprocess(settings, LOCAL_DEFAULT_MODEL, on_progress)


def _scripted(settings: Settings) -> Backend:
    from .script import ScriptError, load_script
    from .scripted import ScriptedBackend

    if settings.script is None:
        raise BackendConfigError("--backend scripted needs --script FILE.json (a JSON list of assistant turns)")
    try:
        return ScriptedBackend(load_script(settings.script))
    except ScriptError as exc:
        raise BackendConfigError(str(exc)) from None
    except ValueError as exc:  # pydantic validation of the turns
        raise BackendConfigError(f"script file {settings.script} has a malformed turn: {exc.errors()[0]['msg'] if hasattr(exc, 'errors') else exc}") from None


def _api_key(settings: Settings, base_url: str | None) -> str | None:
    if settings.api_key_env:
        key = os.environ.get(settings.api_key_env)
        if not key:
            raise BackendConfigError(f"environment variable {settings.api_key_env} (from --api-key-env) is not set")
        return key
    host = urlparse(base_url or "").hostname or ""
    if host.endswith("deepseek.com"):
        key = os.environ.get("DEEPSEEK_API_KEY")
        if not key:
            raise BackendConfigError("the DeepSeek API needs a key: set DEEPSEEK_API_KEY or pass --api-key-env VAR")
        return key
    if base_url and (base_url == os.environ.get("OPENAI_BASE_URL") or host.endswith("openai.com")):
        return os.environ.get("OPENAI_API_KEY") or None
    return None


def _openai(settings: Settings, base_url: str | None, model: str | None, api_key: str | None) -> Backend:
    from .openai_compat import OpenAICompatBackend

    if not base_url:
        raise BackendConfigError("--backend openai needs --base-url URL (e.g. http://127.0.0.1:8000/v1)")
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BackendConfigError(f"--base-url {base_url!r} is not an http(s) URL")
    if not model:
        model = _served_model(base_url, api_key)
    return OpenAICompatBackend(base_url, model, api_key, context_window=settings.context_window,
                               timeout_s=settings.request_timeout_s, max_retries=settings.max_retries,
                               extra_body=settings.extra_body)


def _served_model(base_url: str, api_key: str | None) -> str:
    """No model named: a single-model server's own (llama.cpp, vLLM, SGLang list exactly one)."""
    import httpx

    from .server_info import first_model_id

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(headers=headers) as client:
        model = first_model_id(client, base_url.rstrip("/"))
    if not model:
        raise BackendConfigError(f"an OpenAI-compatible endpoint needs --model NAME (the model name the server serves); "
                                 f"{base_url.rstrip('/')}/models did not list one")
    return model


def _inprocess(settings: Settings, model: str, on_progress: ProgressCallback | None = None) -> Backend:
    try:
        from .inprocess import InProcessBackend, ModelNotFound
        from ...runtime.errors import RuntimeModelError
    except ImportError as exc:
        raise BackendConfigError(
            "the in-process runtime is not installed (run scripts/setup, which installs the 'runtime' extra); "
            f"or use --base-url URL --model NAME, or --backend scripted --script FILE ({exc})") from None
    try:
        live_hot = settings.kv_live_hot_mb
        return InProcessBackend.load(model, context_window=settings.context_window, threads=settings.threads,
                                     hot_kv_bytes=live_hot << 20 if live_hot is not None else None,
                                     on_progress=on_progress)
    except (ModelNotFound, RuntimeModelError) as exc:  # a bad file, a missing tokenizer: one line, not a traceback
        raise BackendConfigError(str(exc)) from None
