"""Byte scan of a directory for a text in every form a program could have written it (for tests and evals).

Forget promises that nothing under `$DSV4_HOME` can give a forgotten text back. Files that hold it are
SQLite databases and their `-wal` / `-shm` files, LanceDB fragments, deletion files, manifests and
transactions, KV snapshots, logs: each file is read whole, as bytes, and searched for the text

- raw (UTF-8) and lower-case (FTS5 and most tokenizers store terms folded),
- JSON-escaped (`json.dumps` with and without `ensure_ascii`, without the quotes),
- base64 (standard and URL-safe alphabets, at each of the three byte alignments a text can have inside a
  longer encoded blob: only the characters that depend on the text alone are searched),
- UTF-16 little- and big-endian (SQLite's UTF-16 encodings, Windows tools).

Forms shorter than `MIN_NEEDLE` bytes are skipped: they would match by chance.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MIN_NEEDLE = 4
LEAD = {0: 0, 1: 2, 2: 3}  # base64 characters that still depend on the unknown bytes before the text
TAIL = {0: 0, 1: 1, 2: 2}  # characters of a last partial group that depend on the text alone


@dataclass(frozen=True)
class Trace:
    path: Path
    form: str  # "raw", "lower", "json", "json ascii", "base64 +1", "utf-16-le", ...
    text: str  # which of the texts scanned for
    offset: int  # of the first occurrence in the file

    def __str__(self) -> str:
        return f"{self.form} of {self.text[:40]!r} in {self.path} at byte {self.offset}"


def base64_forms(raw: bytes) -> dict[str, bytes]:
    """The base64 characters that encode `raw` whatever surrounds it, for each alignment and alphabet."""
    forms: dict[str, bytes] = {}
    for shift in (0, 1, 2):
        total = shift + len(raw)
        end = (total // 3) * 4 + TAIL[total % 3]
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            forms[f"{name} +{shift}"] = encode(b"\0" * shift + raw)[LEAD[shift]:end]
    return forms


def forms(text: str) -> dict[str, bytes]:
    """Every byte form of `text` the scan looks for, by name (duplicates and too-short forms left out)."""
    raw = text.encode()
    candidates = {
        "raw": raw,
        "lower": text.lower().encode(),
        "json": json.dumps(text, ensure_ascii=False)[1:-1].encode(),
        "json ascii": json.dumps(text)[1:-1].encode(),
        **base64_forms(raw),
        "utf-16-le": text.encode("utf-16-le"),
        "utf-16-be": text.encode("utf-16-be"),
    }
    out: dict[str, bytes] = {}
    for name, needle in candidates.items():
        if len(needle) >= MIN_NEEDLE and needle not in out.values():
            out[name] = needle
    return out


def scan(root: Path, texts: str | Iterable[str]) -> list[Trace]:
    """Every (file, form, text) under `root` that holds one of the texts; files are read whole."""
    wanted = [texts] if isinstance(texts, str) else list(texts)
    needles = [(text, name, needle) for text in wanted for name, needle in forms(text).items()]
    traces: list[Trace] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        for text, name, needle in needles:
            offset = data.find(needle)
            if offset >= 0:
                traces.append(Trace(path=path, form=name, text=text, offset=offset))
    return traces
