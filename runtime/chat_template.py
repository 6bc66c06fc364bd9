"""Rendering a model's Jinja chat template the way `transformers.apply_chat_template` does.

Templates come from model files, so they run in jinja's immutable sandbox with the same globals and
filters that transformers provides (`raise_exception`, `strftime_now`, a non-escaping `tojson`);
a template written for transformers renders byte-identically here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None, sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=8)
def compile_template(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def render_chat_template(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    special_tokens: Mapping[str, str] | None = None,
    **extra: Any,
) -> str:
    """The prompt text for `messages` (OpenAI-shaped dicts) and `tools` (OpenAI function schemas)."""
    return compile_template(template).render(
        messages=[dict(m) for m in messages],
        tools=[dict(t) for t in tools] if tools else None,
        documents=None,
        add_generation_prompt=add_generation_prompt,
        **dict(special_tokens or {}),
        **extra,
    )


def template_handles_tools(template: str) -> bool:
    """Whether the template itself renders tool schemas and tool calls (else the runtime injects them)."""
    return "tools" in template and "tool_call" in template
