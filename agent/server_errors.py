"""Which backend errors mean "the prompt does not fit the context window".

Servers say it in their own words, mostly in a 400 body: vLLM and OpenAI ("maximum context length",
code `context_length_exceeded`), SGLang ("longer than the model's context length"), llama.cpp server
("exceeds the available context size", type `exceed_context_size_error`), Anthropic-style proxies
("prompt is too long"); the in-process runtime raises `ContextOverflow` ("does not fit the context
window"). The loop answers such an error with one compaction and one retry.
"""

from __future__ import annotations

import re

from .events import Error

OVERFLOW_PATTERNS = (
    r"maximum context length",
    r"context_length_exceeded",
    r"exceeds? the available context size",
    r"exceed_context_size_error",
    r"prompt is too long",
    r"longer than the model'?s context length",
    r"does not fit the context window",
    r"context window (is )?exceeded",
    r"too many tokens in the (prompt|input)",
    r"input is too long",
)
_OVERFLOW = re.compile("|".join(OVERFLOW_PATTERNS), re.IGNORECASE)
OVERFLOW_STATUS = (400, 413, 422)  # servers answer an overlong prompt with one of these, never a 5xx


def is_context_overflow(error: Error) -> bool:
    if error.kind == "http" and error.status_code is not None and error.status_code not in OVERFLOW_STATUS:
        return False
    if error.kind not in ("http", "runtime", "bad_response"):
        return False
    return bool(_OVERFLOW.search(error.message))


# How servers state their window in the same bodies: vLLM/OpenAI, SGLang, llama.cpp.
_WINDOW = re.compile(r"maximum context length is (\d+)|model'?s context length \((\d+) tokens\)|\"n_ctx\\?\"\s*:\s*\\?\"?(\d+)",
                     re.IGNORECASE)


def stated_window(error: Error) -> int | None:
    """The window an overflow error names, when it names one: the meter then counts against it."""
    match = _WINDOW.search(error.message)
    if match is None:
        return None
    return int(next(group for group in match.groups() if group))
