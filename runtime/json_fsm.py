"""A character-level pushdown automaton that accepts JSON matching a schema, one character at a time.

Frames are immutable, so trying a candidate token never disturbs the real state: `advance(stack, text)`
returns a new stack, or None when `text` cannot continue a valid document. Supported schema: type (incl.
lists), enum, const, properties, required, additionalProperties, items, maxLength, anyOf/oneOf (the first
alternative that accepts the first character wins). Whitespace runs are capped so a model cannot stall in
indentation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

WS, MAX_WS = " \n\t\r", 12
DONE = "done"  # the value ended before this char: pop and give the char to the parent
Stack = tuple  # of frames, top last; () means the whole document has been read


def _types(schema: Mapping[str, Any]) -> set[str]:
    if "const" in schema or "enum" in schema:
        return {"literal"}
    t = schema.get("type")
    if t is None:
        return {"string", "number", "integer", "boolean", "null", "object", "array"}
    return set(t) if isinstance(t, list) else {t}


class Value:
    __slots__ = ("schema", "ws")

    def __init__(self, schema: Mapping[str, Any], ws: int = 0) -> None:
        self.schema, self.ws = schema, ws

    def feed(self, ch: str) -> Any:
        if ch in WS:
            return (Value(self.schema, self.ws + 1),) if self.ws < MAX_WS else None
        for alt in self.schema.get("anyOf") or self.schema.get("oneOf") or [self.schema]:
            frame = _start(alt, ch)
            if frame is not None:
                return frame
        return None


def _start(schema: Mapping[str, Any], ch: str) -> Any:
    types = _types(schema)
    if "literal" in types:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        return Literal(tuple(json.dumps(v, ensure_ascii=False) for v in values), 0).feed(ch)
    if ch == '"' and "string" in types:
        return (String(0, schema.get("maxLength", 1 << 30)),)
    if ch == "{" and "object" in types:
        return (Object.for_schema(schema),)
    if ch == "[" and "array" in types:
        return (Array(schema.get("items") or {}, "start", 0),)
    if (ch == "-" or ch.isdigit()) and types & {"number", "integer"}:
        return Number("number" not in types, "").feed(ch)
    if ch in "tf" and "boolean" in types:
        return Literal(("true", "false"), 0).feed(ch)
    if ch == "n" and "null" in types:
        return Literal(("null",), 0).feed(ch)
    return None


class Literal:
    __slots__ = ("alts", "pos")

    def __init__(self, alts: tuple[str, ...], pos: int) -> None:
        self.alts, self.pos = alts, pos

    def feed(self, ch: str) -> Any:
        going = tuple(a for a in self.alts if len(a) > self.pos and a[self.pos] == ch)
        if not going:
            return DONE if any(len(a) == self.pos for a in self.alts) else None
        if all(len(a) == self.pos + 1 for a in going):
            return ()
        return (Literal(going, self.pos + 1),)


class String:
    __slots__ = ("escape", "left")  # escape: 0 plain, 1 after backslash, 2..5 hex digits of \uXXXX to come (+1)

    def __init__(self, escape: int, left: int) -> None:
        self.escape, self.left = escape, left  # left: characters still allowed (maxLength; an escape counts once)

    def feed(self, ch: str) -> Any:
        if self.escape == 1:
            if ch == "u":
                return (String(5, self.left),)
            return (String(0, self.left),) if ch in '"\\/bfnrt' else None
        if self.escape > 1:
            return (String(self.escape - 1 if self.escape > 2 else 0, self.left),) if ch in "0123456789abcdefABCDEF" else None
        if ch == '"':
            return ()
        if self.left <= 0 or ord(ch) < 0x20:
            return None
        return (String(1 if ch == "\\" else 0, self.left - 1),)


class Number:
    __slots__ = ("integer", "text", "state")
    _NEXT = {  # state -> allowed chars -> next state
        "": {"-": "sign", "0": "zero", "d": "int"},
        "sign": {"0": "zero", "d": "int"},
        "zero": {".": "dot", "e": "e"},
        "int": {"d": "int", ".": "dot", "e": "e"},
        "dot": {"d": "frac", "0": "frac"},
        "frac": {"d": "frac", "0": "frac", "e": "e"},
        "e": {"+": "esign", "-": "esign", "d": "exp", "0": "exp"},
        "esign": {"d": "exp", "0": "exp"},
        "exp": {"d": "exp", "0": "exp"},
    }
    _COMPLETE = {"zero", "int", "frac", "exp"}

    def __init__(self, integer: bool, text: str, state: str = "") -> None:
        self.integer, self.text, self.state = integer, text, state

    def feed(self, ch: str) -> Any:
        text, state = self.text, self.state
        key = "d" if ch in "123456789" else "e" if ch in "eE" else ch
        nxt = self._NEXT[state].get(key)
        if nxt is None and key == "0":
            nxt = self._NEXT[state].get("d")
        if nxt is None or (self.integer and nxt in ("dot", "e")) or len(text) >= 24:
            return DONE if state in self._COMPLETE else None
        return (Number(self.integer, text + ch, nxt),)


class Array:
    __slots__ = ("items", "state", "ws")

    def __init__(self, items: Mapping[str, Any], state: str, ws: int) -> None:
        self.items, self.state, self.ws = items, state, ws

    def feed(self, ch: str) -> Any:
        if ch in WS:
            return (Array(self.items, self.state, self.ws + 1),) if self.ws < MAX_WS else None
        if ch == "]" and self.state in ("start", "after"):
            return ()
        if ch == "," and self.state == "after":
            return (Array(self.items, "comma", 0),)
        if self.state in ("start", "comma"):
            child = Value(self.items).feed(ch)
            return None if child is None or child == DONE else (Array(self.items, "after", 0), *child)
        return None


class Object:
    """An object whose keys come from `props` (or any string with additionalProperties); it parses its own keys.

    `choose` names a key whose string value the object also reads itself (the tool name), so that
    `dependent[value]` can give the schema of the `then` key (the arguments)."""

    __slots__ = ("props", "required", "extra", "seen", "state", "key", "ws", "choose", "dependent", "chosen")

    def __init__(self, props, required, extra, seen=frozenset(), state="start", key="", ws=0, choose=None, dependent=None, chosen=None):
        self.props, self.required, self.extra, self.seen = props, required, extra, seen
        self.state, self.key, self.ws = state, key, ws
        self.choose, self.dependent, self.chosen = choose, dependent, chosen

    @classmethod
    def for_schema(cls, schema: Mapping[str, Any]) -> Object:
        # False: only the listed keys (the JSON-schema default is True, but a constrained call should not invent keys)
        extra = schema.get("additionalProperties", not schema.get("properties"))
        return cls(dict(schema.get("properties") or {}), frozenset(schema.get("required") or ()), extra)

    def _with(self, **changes: Any) -> Object:
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Object(**fields)

    def _key_options(self) -> list[str]:
        if self.choose is not None and self.chosen is None:  # the tool name comes first: it picks the arguments schema
            return [self.choose] if self.choose not in self.seen else []
        return [k for k in self.props if k not in self.seen]

    def feed(self, ch: str) -> Any:
        st = self.state
        if st in ("key", "choose"):
            return self._feed_string(ch)
        if ch in WS:
            return (self._with(ws=self.ws + 1),) if self.ws < MAX_WS else None
        if st in ("start", "comma") and ch == '"':
            return (self._with(state="key", key="", ws=0),)
        if st in ("start", "after") and ch == "}":
            return () if self.required <= self.seen else None
        if st == "after" and ch == ",":
            return (self._with(state="comma", ws=0),) if self._key_options() or self.extra is not False else None
        if st == "colon" and ch == ":":
            return (self._with(state="value", ws=0),)
        if st == "value":
            if self.key == self.choose:
                return (self._with(state="choose", key="", ws=0),) if ch == '"' else None
            schema = self.props.get(self.key)
            if self.dependent is not None and self.chosen is not None and schema is None:
                schema = self.dependent[self.chosen]
            child = Value(schema if schema is not None else (self.extra if isinstance(self.extra, dict) else {})).feed(ch)
            return None if child is None or child == DONE else (self._with(state="after", ws=0), *child)
        return None

    def _feed_string(self, ch: str) -> Any:
        # keys and the chosen value are matched against their options char by char (no escapes: names are identifiers)
        options = self._key_options() if self.state == "key" else list(self.dependent or ())
        free = self.state == "key" and self.extra is not False and not (self.choose and self.chosen is None)
        if ch == '"':
            if self.key in options or (free and self.key and self.key not in self.seen):
                if self.state == "key":
                    return (self._with(state="colon", seen=self.seen | {self.key}, ws=0),)
                return (self._with(state="after", chosen=self.key, ws=0),)
            return None
        if ch == "\\" or ord(ch) < 0x20:
            return None
        key = self.key + ch
        if free or any(o.startswith(key) for o in options):
            return (self._with(key=key),)
        return None


def advance(stack: Stack, text: str) -> Stack | None:
    """Feed `text` to the automaton; None if it cannot be part of a valid call."""
    for ch in text:
        while True:
            if not stack:
                return None  # the call is complete; nothing more may follow inside it
            result = stack[-1].feed(ch)
            if result is None:
                return None
            if result == DONE:
                stack = stack[:-1]
                continue
            stack = stack[:-1] + result
            break
    return stack
