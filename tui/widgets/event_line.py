from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from textual.widgets import Static


def describe_event(event: Any) -> str:
    """A readable line for an agent event this TUI has no special rendering for (e.g. one from a newer agent)."""
    data = event.model_dump(exclude={"type"}) if isinstance(event, BaseModel) else {"value": repr(event)}
    kind = str(getattr(event, "type", type(event).__name__)).replace("_", " ")
    fields = ", ".join(f"{k}: {str(v)[:60]}" for k, v in data.items() if v not in (None, "", [], {}))
    return f"{kind}" + (f" — {fields}" if fields else "")


class EventLine(Static):
    """One line for a side event: a file changed, context compacted, memory changed, or anything unknown."""

    DEFAULT_CSS = """
    EventLine { padding: 0 1 0 3; color: $text-muted; }
    """

    def __init__(self, text: str) -> None:
        super().__init__(text, markup=False)
        self.text = text
