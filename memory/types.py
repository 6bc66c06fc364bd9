"""The value types of Engram memory and the errors a caller (CLI, tool, TUI) shows to the user."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

Scope = Literal["user", "repo", "session"]
Kind = Literal["fact", "preference", "decision", "note"]
SCOPES: tuple[str, ...] = ("user", "repo", "session")
KINDS: tuple[str, ...] = ("fact", "preference", "decision", "note")
# On the same key, a narrower scope wins: session beats repo beats user.
PRECEDENCE = {"session": 2, "repo": 1, "user": 0}


MAX_KEY = 120


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class EngramError(Exception):
    """Base of every memory error; the message is written for the user, one line."""


class InvalidInput(EngramError):
    pass


class NotFound(EngramError):
    pass


class PinnedOverBudget(EngramError):
    def __init__(self, needed: int, budget: int, item_ids: list[str]) -> None:
        self.needed, self.budget, self.item_ids = needed, budget, item_ids
        super().__init__(
            f"pinned memories need {needed} tokens but the memory budget is {budget}; "
            f"unpin some of {', '.join(item_ids)} (dsv4-code memory unpin ID) or raise the budget")


class PinnedOverWindow(EngramError):
    """The system message with the pinned memories (and the tools, and room for a reply) exceeds the model's
    context window: pinned items are never cut, so the session cannot go on until some are unpinned."""

    def __init__(self, needed: int, window: int, item_ids: list[str]) -> None:
        self.needed, self.window, self.item_ids = needed, window, item_ids
        super().__init__(
            f"the pinned memories {', '.join(item_ids)} do not fit the context window: the system message with them, "
            f"the tools and room for a reply need {needed} tokens of {window}; unpin some "
            "(dsv4-code memory unpin ID) or use a model with a larger window")


class StoreUnavailable(EngramError):
    """The database is corrupted, locked by another process, or unreadable."""


def normalise_key(key: str | None) -> str | None:
    """Keys compare case- and space-insensitively: "Indent  Style" and "indent style" are one key."""
    if key is None:
        return None
    key = " ".join(key.split()).lower()
    if not key:
        raise InvalidInput("the key is empty; leave it out for an unkeyed memory")
    if len(key) > MAX_KEY:
        raise InvalidInput(f"the key is {len(key)} characters; keys are at most {MAX_KEY}")
    return key


@dataclass
class Item:
    id: str
    scope: str
    owner: str  # "" for user scope, the repo identity for repo scope, the session id for session scope
    repo_id: str  # the repository it was written in ("" when none); provenance for user-scope items
    key: str | None
    text: str
    kind: str
    pinned: bool
    status: str  # active | superseded
    created_at: str
    superseded_by: str | None = None
    superseded_at: str | None = None
    session_id: str = ""
    turn: int | None = None
    actor: str = "user"  # user | agent | capture | cli
    seq: int = 0  # write order (the logical clock); ties none: every write gets a new one
    slot: str | None = None  # a preference's subject slot (memory/slots.py): a new value there supersedes

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Item:
        names = cls.__dataclass_fields__
        values = {k: row[k] for k in names if k in row}
        values["pinned"] = bool(values["pinned"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """One line for lists and the context block: id, kind, scope and key, then the text."""
        key = f" {self.key}:" if self.key else ""
        pin = " pinned" if self.pinned else ""
        return f"[{self.id}] ({self.kind}, {self.scope}{pin}){key} {self.text}"


@dataclass
class Candidate:
    """A preference captured from an explicit user statement, ready for `MemoryStore.remember`."""

    text: str
    key: str | None = None  # captured statements are unkeyed: the store assigns their subject slot
    scope: str = "repo"
    kind: str = "preference"
    slot: str | None = None  # the subject slot the store will put it in (memory/slots.py), for display


@dataclass
class Hit:
    item: Item
    score: float
    sources: list[str]  # which searches found it: "fts", "vector"


@dataclass
class RecallResult:
    hits: list[Hit]
    note: str = ""  # e.g. why vector search was not used

    @property
    def items(self) -> list[Item]:
        return [h.item for h in self.hits]


@dataclass
class MemoryBlock:
    """The memory section of the model's context: `text` is exactly what the model reads."""

    text: str
    item_ids: list[str]
    pinned_ids: list[str]
    tokens: int
    budget: int
    omitted: int = 0  # unpinned items that did not fit the budget (still reachable through recall)
    shadowed: list[str] = field(default_factory=list)  # keyed items hidden by a narrower scope's value

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Tombstone:
    id: str
    forgotten_at: str
    reason: str
    complete: bool
