"""Progress of the slow parts of a session a front end shows as bars: loading the model, reading the repository
(files with tags, of those with a grammar) and the in-process model's prefill (prompt tokens computed).

Reported through the callback given to `AgentSession.open(on_progress=...)`, from the thread doing the work;
not an AgentEvent, so the session log and headless stream-json stay as they are."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel

Stage = Literal["model", "repository", "prefill"]


class Progress(BaseModel):
    stage: Stage
    done: int
    total: int | None  # None while the amount of work is not known (loading the model)
    unit: str = ""  # "files", "tokens"


ProgressCallback = Callable[[Progress], None]


@runtime_checkable
class ReportsPrefill(Protocol):
    """A backend whose prefill runs here (the in-process runtime) and can say how far it is."""

    def report_prefill(self, callback: Callable[[int, int], None] | None) -> None: ...
