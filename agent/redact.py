"""The one redaction point: every error message, event, log line and report passes through `redact`.

It removes the value of the backend's key variable (passed in by whoever holds it) and of every
secret-looking environment variable (a name containing KEY, TOKEN, SECRET or PASSWORD) wherever the
value appears, the credential of any Authorization header or Bearer token, and `user:password@` in URLs. Short values (under
8 characters) of secret-looking variables are left alone: `TOKENIZERS_PARALLELISM=false` is not a
secret, and redacting "false" everywhere would garble output. An explicitly named secret is redacted
whatever its length.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
MIN_ENV_SECRET_CHARS = 8
_HEADER = re.compile(r"(?i)(authorization|proxy-authorization|x-api-key|api-key)(\"?\s*[:=]\s*\"?)(bearer\s+|basic\s+)?[^\s\"',}]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{6,}")
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@")


def secret_names(env: Mapping[str, str] | None = None) -> list[str]:
    """The environment variables that look like secrets (also what subprocess environments should drop)."""
    return [name for name in (os.environ if env is None else env) if SECRET_NAME.search(name)]


def secret_values(env: Mapping[str, str] | None = None, extra: Iterable[str | None] = ()) -> list[str]:
    source = os.environ if env is None else env
    values = {source[name] for name in secret_names(source) if len(source[name]) >= MIN_ENV_SECRET_CHARS}
    values.update(value for value in extra if value)
    return sorted(values, key=len, reverse=True)  # longest first, so a key containing another goes whole


def redact(text: str, secrets: Iterable[str | None] = (), env: Mapping[str, str] | None = None) -> str:
    for value in secret_values(env, secrets):
        text = text.replace(value, REDACTED)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}", text)
    text = _URL_CREDENTIALS.sub(f"{REDACTED}@", text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


def redact_data(value: Any, secrets: Iterable[str | None] = (), env: Mapping[str, str] | None = None) -> Any:
    """`redact` applied to every string inside a JSON-shaped value (an event or a report before it is written)."""
    secrets = list(secrets)
    if isinstance(value, str):
        return redact(value, secrets, env)
    if isinstance(value, dict):
        return {key: redact_data(item, secrets, env) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(item, secrets, env) for item in value]
    return value
