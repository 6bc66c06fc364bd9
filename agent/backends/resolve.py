"""Which backend a command talks to, from flags and config (docs/architecture.md, "Backends")."""

from __future__ import annotations

import os
from urllib.parse import urlparse

from ..config import DEEPSEEK_BASE_URL, DEEPSEEK_DEFAULT_MODEL, LOCAL_DEFAULT_MODEL, Settings
from .base import Backend


class BackendConfigError(Exception):
    """The model flags or config do not name a usable backend; the message says what to do."""


def describe(settings: Settings) -> str:
    """A one-line description of the backend `make_backend` would build, for status bars and reports."""
    if settings.backend == "scripted" or settings.script:
        return f"scripted ({settings.script})"
    if settings.base_url or settings.backend == "openai":
        return f"{settings.model} @ {settings.base_url}"
    if settings.model or settings.backend == "inprocess":
        return f"{settings.model or LOCAL_DEFAULT_MODEL} (in-process)"
    if os.environ.get("DEEPSEEK_API_KEY"):
        return f"{DEEPSEEK_DEFAULT_MODEL} @ {DEEPSEEK_BASE_URL}"
    return f"{LOCAL_DEFAULT_MODEL} (in-process, the small default model)"


def make_backend(settings: Settings) -> Backend:
    if settings.backend == "scripted" or settings.script:
        return _scripted(settings)
    if settings.base_url or settings.backend == "openai":
        return _openai(settings, settings.base_url, settings.model, _api_key(settings))
    if settings.model or settings.backend == "inprocess":
        return _inprocess(settings, settings.model or LOCAL_DEFAULT_MODEL)
    if os.environ.get("DEEPSEEK_API_KEY"):
        return _openai(settings, DEEPSEEK_BASE_URL, DEEPSEEK_DEFAULT_MODEL, os.environ["DEEPSEEK_API_KEY"])
    return _inprocess(settings, LOCAL_DEFAULT_MODEL)


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


def _api_key(settings: Settings) -> str | None:
    if settings.api_key_env:
        key = os.environ.get(settings.api_key_env)
        if not key:
            raise BackendConfigError(f"environment variable {settings.api_key_env} (from --api-key-env) is not set")
        return key
    host = urlparse(settings.base_url or "").hostname or ""
    if host.endswith("deepseek.com"):
        key = os.environ.get("DEEPSEEK_API_KEY")
        if not key:
            raise BackendConfigError("the DeepSeek API needs a key: set DEEPSEEK_API_KEY or pass --api-key-env VAR")
        return key
    return None


def _openai(settings: Settings, base_url: str | None, model: str | None, api_key: str | None) -> Backend:
    from .openai_compat import OpenAICompatBackend

    if not base_url:
        raise BackendConfigError("--backend openai needs --base-url URL (e.g. http://127.0.0.1:8000/v1)")
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BackendConfigError(f"--base-url {base_url!r} is not an http(s) URL")
    if not model:
        raise BackendConfigError("an OpenAI-compatible endpoint needs --model NAME (the model name the server serves)")
    return OpenAICompatBackend(base_url, model, api_key, context_window=settings.context_window or 131072,
                               timeout_s=settings.request_timeout_s, max_retries=settings.max_retries)


def _inprocess(settings: Settings, model: str) -> Backend:
    try:
        from .inprocess import InProcessBackend, ModelNotFound
        from ...runtime.errors import RuntimeModelError
    except ImportError as exc:
        raise BackendConfigError(
            "the in-process runtime is not installed (run scripts/setup, which installs the 'runtime' extra); "
            f"or use --base-url URL --model NAME, or --backend scripted --script FILE ({exc})") from None
    try:
        return InProcessBackend.load(model, context_window=settings.context_window)
    except (ModelNotFound, RuntimeModelError) as exc:  # a bad file, a missing tokenizer: one line, not a traceback
        raise BackendConfigError(str(exc)) from None
