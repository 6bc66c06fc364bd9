"""Errors the runtime raises before any work starts, each with a message a user can act on."""

from __future__ import annotations


class RuntimeModelError(Exception):
    """Base class: something is wrong with the model, its files, or the request."""


class ModelNotFound(RuntimeModelError):
    """No model at the given path or name; the message lists what would work."""


class BadModelFile(RuntimeModelError):
    """The file exists but cannot be used: truncated, wrong format, unsupported architecture or tensor type."""


class MissingTokenizer(RuntimeModelError):
    """The checkpoint has weights but nothing to build a tokenizer from."""


class ContextOverflow(RuntimeModelError):
    """The prompt (plus the tokens asked for) does not fit the context window."""
