"""The context window a server reports in `GET {base_url}/models`, when it reports one.

Field names by server: vLLM `max_model_len`; SGLang `max_model_len`; llama.cpp's server
`meta.n_ctx_train` (and `n_ctx` where the build reports the configured window); OpenRouter and
LM Studio style `context_length`; others `context_window`, `max_context_length`. The model entry
whose `id` is the model in use is preferred, else the first. Anything unusable (no such field, a
non-number, an absurd size, an HTTP error, no answer within a few seconds) means "not reported".
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

CONTEXT_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length", "max_seq_len",
                  "n_ctx", "n_ctx_train")
PLAUSIBLE_CONTEXT = range(256, 100_000_001)
DISCOVERY_TIMEOUT_S = 5.0


class _ModelEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    meta: dict[str, Any] | None = None


class _ModelList(BaseModel):
    model_config = ConfigDict(extra="ignore")
    data: list[_ModelEntry]


def context_window_of(listing: Any, model: str) -> int | None:
    """The window from a parsed `/models` answer; None when it names none."""
    try:
        entries = _ModelList.model_validate(listing).data
    except ValidationError:
        return None
    chosen = [entry for entry in entries if entry.id == model] or entries[:1]
    for entry in chosen:
        fields = {**(entry.model_extra or {}), **(entry.meta or {})}
        # n_ctx (the configured window) before n_ctx_train (what the model was trained for): the server's limit wins
        for name in CONTEXT_FIELDS:
            value = fields.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value in PLAUSIBLE_CONTEXT:
                return value
    return None


def discover_context_window(client: httpx.Client, base_url: str, model: str) -> int | None:
    try:
        response = client.get(f"{base_url}/models", timeout=DISCOVERY_TIMEOUT_S,
                              headers={"Accept": "application/json"})
        if response.status_code != 200:
            return None
        return context_window_of(response.json(), model)
    except (httpx.HTTPError, ValueError):  # no such endpoint, not JSON: the server just does not say
        return None


def first_model_id(client: httpx.Client, base_url: str) -> str | None:
    """The model a single-model server (llama.cpp, vLLM, SGLang) serves, for when none was named."""
    try:
        response = client.get(f"{base_url}/models", timeout=DISCOVERY_TIMEOUT_S, headers={"Accept": "application/json"})
        entries = _ModelList.model_validate(response.json()).data if response.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return None
    return next((entry.id for entry in entries if entry.id), None)
