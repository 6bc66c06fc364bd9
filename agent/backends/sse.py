"""Server-sent events from raw bytes: the payload of each `data:` field, in order.

Comments (`: ping`), `event:`/`id:`/`retry:` fields and blank lines carry nothing for chat completions
and are skipped; the caller's deadline still holds while they arrive, because it waits on the bytes
(`http_exchange.py`), not on events. A body with no `data:` field at all (a JSON document, an HTML
page, plain text) is a problem with a message, as is a line longer than any chunk could be.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

MAX_LINE_BYTES = 8 * 1024 * 1024
_IGNORED_FIELDS = ("event", "id", "retry")


class SSEProblem(Exception):
    def __init__(self, message: str, line: str = "") -> None:
        super().__init__(message)
        self.line = line  # the offending line, for a caller that can read an error document in it


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        for line in complete:
            yield line.decode("utf-8", "replace")
        if len(pending) > MAX_LINE_BYTES:
            raise SSEProblem(f"the server sent a line of more than {MAX_LINE_BYTES // (1024 * 1024)} MiB without an end")
    if pending:
        yield pending.decode("utf-8", "replace")


def sse_data(chunks: Iterable[bytes]) -> Iterator[str]:
    saw_data = False
    for line in _lines(chunks):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            saw_data = True
            yield value[1:] if value.startswith(" ") else value
        elif field not in _IGNORED_FIELDS and not saw_data:
            raise SSEProblem(f"the server did not answer with an event stream; it sent: {line[:120]!r}", line)
