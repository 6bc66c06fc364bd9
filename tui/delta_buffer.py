"""Coalescing of streamed deltas between the agent's worker and the UI.

A model can stream hundreds of deltas a second; one UI message per delta floods the event loop (each one a
Markdown update) and keys wait behind them. Instead the worker appends deltas to an open segment and posts one
message per segment; the UI takes the segment's whole text when it gets to it, which closes it, so the next
delta opens a new segment. Any other event closes the open segment first, so the order of text and events
on screen is the order the agent emitted them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Segment:
    kind: str  # "text" or "reasoning"
    parts: list[str] = field(default_factory=list)
    closed: bool = False


class DeltaBuffer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Segment | None = None

    def add(self, kind: str, text: str) -> Segment | None:
        """Append a delta (worker side); returns a new segment to post, or None when an open one takes it."""
        with self._lock:
            if self._open is not None and not self._open.closed and self._open.kind == kind:
                self._open.parts.append(text)
                return None
            if self._open is not None:
                self._open.closed = True
            self._open = Segment(kind, [text])
            return self._open

    def close(self) -> None:
        """Another event follows (worker side): later deltas go to a new segment, after it."""
        with self._lock:
            if self._open is not None:
                self._open.closed = True
                self._open = None

    def take(self, segment: Segment) -> str:
        """The segment's text so far (UI side); it takes no more deltas."""
        with self._lock:
            segment.closed = True
            text = "".join(segment.parts)
            segment.parts.clear()
            return text
