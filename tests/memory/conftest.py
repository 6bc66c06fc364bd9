from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dsv4.memory import HashingEmbedder, MemoryStore

REPO = "repo-a"
OTHER_REPO = "repo-b"


@pytest.fixture
def store(dsv4_home: Path) -> Iterator[MemoryStore]:
    """A real store (SQLite file + LanceDB directory) under the test's $DSV4_HOME, with the hashing embedder."""
    s = MemoryStore.open(dsv4_home, embedder=HashingEmbedder())
    yield s
    s.close()


def files_containing(root: Path, needle: bytes) -> list[str]:
    """Every file under root whose bytes contain needle."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())
