"""The memory tools the model can call: remember, forget, recall (docs/architecture.md, "Tools and effects").

They work on `workspace.memory` (the Engram store the agent opened) in this repository and session. A
remember or forget result carries `memory` (a MemoryChange), from which the agent emits MemoryChanged events
and, after a forget, rebuilds its context; `data` repeats it for the UI.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from ..memory.types import EngramError
from .base import Effect, MemoryChange, ToolError, ToolResult
from .workspace import Workspace

ITEM_ID = re.compile(r"^m-[0-9a-f]{12}$")


def forget_id_or_key(store: Any, target: str, *, repo_id: str | None, session_id: str | None, reason: str) -> Any:
    """Forget by memory id (`m-` and 12 hex digits) or else by key: what the tool and `/forget` both take."""
    target = target.strip()
    if ITEM_ID.match(target):
        return store.forget(target, repo_id=repo_id, session_id=session_id, reason=reason)
    return store.forget(key=target, repo_id=repo_id, session_id=session_id, reason=reason)


def _store(workspace: Workspace) -> Any:
    if workspace.memory is None:
        raise ToolError("memory is not enabled in this session")
    return workspace.memory


class RememberArgs(BaseModel):
    text: str = Field(description="The fact, preference or decision, as one self-contained sentence")
    key: str | None = Field(default=None, description="A short topic key (e.g. 'indentation'); a new value for an "
                                                      "existing key replaces the old one")
    scope: Literal["user", "repo", "session"] = Field(default="repo", description="user: all repositories; "
                                                      "repo: this repository; session: this session only")
    kind: Literal["fact", "preference", "decision", "note"] = Field(default="fact")
    pin: bool = Field(default=False, description="Always keep it in context (use sparingly)")


class Remember:
    name: ClassVar[str] = "remember"
    description: ClassVar[str] = (
        "Save a fact, preference or decision for later sessions. Give a key when the memory is a value of "
        "something that can change (a style choice, a command, a decision), so a later value replaces it.")
    effects = frozenset({Effect.CHANGES_MEMORY})
    Args = RememberArgs

    def run(self, args: RememberArgs, workspace: Workspace) -> ToolResult:
        store = _store(workspace)
        try:
            done = store.remember(args.text, key=args.key, scope=args.scope, kind=args.kind, pin=args.pin,
                                  repo_id=workspace.repo_id, session_id=workspace.session_id, actor="agent")
        except EngramError as exc:
            raise ToolError(str(exc)) from None
        item = done.item
        if done.unchanged:
            text = f"already remembered as {item.id}"
        elif done.superseded is not None:
            text = f"remembered {item.id}; it replaces {done.superseded.id} ({done.superseded.text!r})"
        else:
            text = f"remembered {item.id}"
        ids = [item.id] + ([done.superseded.id] if done.superseded else [])
        return ToolResult(text=text, summary=f"remembered {item.key or item.text[:60]}",
                          data={"memory_action": "remembered", "item_ids": ids, "item": item.to_json()},
                          memory=MemoryChange(action="remembered", item_ids=ids,
                                              replaces=done.superseded.text if done.superseded else None))


class ForgetArgs(BaseModel):
    id_or_key: str = Field(description="A memory id (m-...) or a key")


class Forget:
    name: ClassVar[str] = "forget"
    description: ClassVar[str] = ("Forget a memory completely (and the earlier values it replaced): by id, or "
                                  "by key. Only when the user asks for it.")
    effects = frozenset({Effect.CHANGES_MEMORY, Effect.DESTRUCTIVE})
    Args = ForgetArgs

    def run(self, args: ForgetArgs, workspace: Workspace) -> ToolResult:
        store = _store(workspace)
        try:
            done = forget_id_or_key(store, args.id_or_key, repo_id=workspace.repo_id, session_id=workspace.session_id,
                                    reason="forgotten at the user's request (agent tool)")
        except EngramError as exc:
            raise ToolError(str(exc)) from None
        return ToolResult(text=done.reply(), summary=f"forgot {len(done.ids)} memories",
                          data={"memory_action": "forgotten", "item_ids": done.ids},
                          memory=MemoryChange(action="forgotten", item_ids=done.ids))


class RecallArgs(BaseModel):
    query: str = Field(description="What to look for, in words")
    limit: int = Field(default=8, ge=1, le=50)


class Recall:
    name: ClassVar[str] = "recall"
    description: ClassVar[str] = "Search the remembered facts, preferences and decisions (current values only)."
    effects = frozenset({Effect.READS_MEMORY})
    Args = RecallArgs

    def run(self, args: RecallArgs, workspace: Workspace) -> ToolResult:
        store = _store(workspace)
        try:
            result = store.recall(args.query, repo_id=workspace.repo_id, session_id=workspace.session_id, k=args.limit)
        except EngramError as exc:
            raise ToolError(str(exc)) from None
        lines = [hit.item.label() for hit in result.hits] or ["no memories match"]
        if result.note:
            lines.append(f"({result.note})")
        return ToolResult(text="\n".join(lines), summary=f"{len(result.hits)} memories",
                          data={"memory_action": "recalled", "item_ids": [h.item.id for h in result.hits],
                                "note": result.note})


MEMORY_TOOLS: tuple[type, ...] = (Remember, Forget, Recall)
