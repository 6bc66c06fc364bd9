"""`todo`: the model's task list. Each call sends the whole list; the loop keeps it in the task state, so the
open items survive a compaction and a resume (agent/task_state.py)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field

from .base import Effects, TodoItem, ToolResult
from .workspace import Workspace

MAX_ITEMS = 50


class TodoArgs(BaseModel):
    items: list[TodoItem] = Field(max_length=MAX_ITEMS,
                                  description="The whole todo list, in order; mark finished items done=true")


class Todo:
    name: ClassVar[str] = "todo"
    description: ClassVar[str] = (
        "Keep a todo list for multi-step work: send the whole list each time (items with text and done). "
        "Open items stay visible to you for the rest of the session."
    )
    effects: ClassVar[Effects] = frozenset()  # touches nothing outside the conversation
    Args = TodoArgs

    def run(self, args: TodoArgs, workspace: Workspace) -> ToolResult:
        open_items = [item for item in args.items if not item.done]
        lines = [f"[{'x' if item.done else ' '}] {item.text}" for item in args.items]
        return ToolResult(text="\n".join(lines) or "(empty todo list)",
                          summary=f"{len(open_items)} open of {len(args.items)}", todos=list(args.items))
