from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

STAGE_LABELS = {"model": "loading the model", "repository": "reading the repository", "prefill": "reading the prompt"}


def progress_label(stage: str, done: int, total: int | None, unit: str, what: str = "") -> str:
    """`reading the prompt  1,024/4,096 tokens`; the bar beside it shows the share and the ETA. `what` names the
    thing loaded (`loading smollm2-135m  120/272 tensors`)."""
    label = f"loading {what}" if stage == "model" and what else STAGE_LABELS.get(stage, stage)
    if total is None:
        return label
    return f"{label}  {done:,}/{total:,} {unit}".rstrip()


class ProgressLine(Horizontal):
    """What is loading or prefilling, with a bar (indeterminate until a total is known) and an ETA."""

    DEFAULT_CSS = """
    ProgressLine { height: 1; display: none; padding: 0 1; }
    ProgressLine.active { display: block; }
    ProgressLine > Label { width: auto; margin-right: 1; color: $text-muted; }
    ProgressLine > ProgressBar { width: 1fr; }
    ProgressLine Bar { width: 1fr; min-width: 8; }
    """

    stage = ""

    def compose(self) -> ComposeResult:
        yield Label("", id="progress-label")
        yield ProgressBar(total=None, show_eta=True, id="progress-bar")

    @property
    def label(self) -> str:
        return str(self.query_one(Label).content)

    def start(self, label: str, total: float | None = None) -> None:
        self.stage = ""
        self.query_one(Label).update(label)
        self.query_one(ProgressBar).update(total=total, progress=0)
        self.add_class("active")

    def show(self, progress: Any, what: str = "") -> None:
        """A Progress (agent/progress.py): a new stage restarts the bar, so its ETA is that stage's own."""
        bar = self.query_one(ProgressBar)
        if progress.stage != self.stage or not self.has_class("active"):
            self.stage = progress.stage
            bar.update(total=progress.total, progress=0)
            self.add_class("active")
        self.query_one(Label).update(progress_label(progress.stage, progress.done, progress.total, progress.unit, what))
        bar.update(total=progress.total, progress=progress.done)

    def stop(self) -> None:
        self.stage = ""
        self.remove_class("active")
