"""Messages workers post to the UI; handlers on the UI thread turn them into widget changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.message import Message


class AgentReady(Message):
    """The session is open; `history` is a resumed session's logged conversation (read in the worker)."""

    def __init__(self, session: Any, history: list[Any] | None = None) -> None:
        super().__init__()
        self.session = session
        self.history = history or []


class AgentFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class AgentEventPosted(Message):
    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event


class ApprovalNeeded(Message):
    """`preview` is the EditPreview of an edit (None for commands); `reply` takes "allow", "deny" or "always"."""

    def __init__(self, request: Any, preview: Any, reply: Callable[[str], None]) -> None:
        super().__init__()
        self.request = request
        self.preview = preview
        self.reply = reply


class TurnFinished(Message):
    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result


class CommandOutput(Message):
    """What a command run in a worker has to say; `diff` text is shown highlighted."""

    def __init__(self, text: str, error: bool = False, diff: str = "") -> None:
        super().__init__()
        self.text = text
        self.error = error
        self.diff = diff


class WorkFailed(Message):
    """A worker raised: the screen must leave its busy state and say what went wrong."""

    def __init__(self, what: str, error: str) -> None:
        super().__init__()
        self.what = what
        self.error = error


class EditPreviewed(Message):
    """The diff an approved edit is about to make (computed in the agent's worker before it writes)."""

    def __init__(self, call_id: str, diff: str) -> None:
        super().__init__()
        self.call_id = call_id
        self.diff = diff


class RepoFacts(Message):
    def __init__(self, files: list[str], branch: str, dirty: bool) -> None:
        super().__init__()
        self.files = files
        self.branch = branch
        self.dirty = dirty


class DeltasReady(Message):
    """Streamed text or reasoning waits in `segment`; take it from the screen's DeltaBuffer."""

    def __init__(self, segment: Any) -> None:
        super().__init__()
        self.segment = segment


class ProgressReported(Message):
    """How loading the model, reading the repository or a prefill goes (an agent Progress)."""

    def __init__(self, progress: Any) -> None:
        super().__init__()
        self.progress = progress


class ValueReplaced(Message):
    """A remembered value (`item_id`) superseded `old_text`: shown with one key to take it back."""

    def __init__(self, item_id: str, text: str, old_text: str) -> None:
        super().__init__()
        self.item_id = item_id
        self.text = text
        self.old_text = old_text
