"""Streamed tool-call deltas folded into whole calls, as the OpenAI streaming spec has it.

Per call (keyed by `index`): `id`, `type` and `function.name` arrive once and are set once; only
`function.arguments` is a fragment to append. Some servers repeat the name in every chunk
(llama-cpp-python's server sends `"name": "read_file"` with each arguments fragment); appending it
would give `read_fileread_file...`, so a name already set is never extended. A delta without an
`index` (some servers omit it) belongs to a new call when it brings a new id, else to the latest one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..messages import ToolCall
from .wire import ToolCallDelta


@dataclass
class _Slot:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    def __init__(self) -> None:
        self._slots: dict[int, _Slot] = {}
        self._latest: int | None = None

    def add(self, delta: ToolCallDelta) -> None:
        index = self._index_for(delta)
        slot = self._slots.setdefault(index, _Slot())
        self._latest = index
        if delta.id and not slot.id:
            slot.id = delta.id
        function = delta.function
        if function is None:
            return
        if function.name and not slot.name:
            slot.name = function.name
        if function.arguments:
            slot.arguments.append(function.arguments)

    def _index_for(self, delta: ToolCallDelta) -> int:
        if delta.index is not None:
            return delta.index
        latest = self._slots.get(self._latest) if self._latest is not None else None
        if latest is None or (delta.id and latest.id and delta.id != latest.id):
            return max(self._slots, default=-1) + 1
        return self._latest

    def calls(self) -> list[ToolCall]:
        return [ToolCall(id=slot.id or f"call_{index}", name=slot.name, arguments="".join(slot.arguments) or "{}")
                for index, slot in sorted(self._slots.items())]

    @property
    def argument_chars(self) -> int:
        return sum(len(slot.name) + sum(map(len, slot.arguments)) for slot in self._slots.values())
