"""Hybrid recall: SQLite FTS5 (BM25) and LanceDB vectors, fused by reciprocal rank.

Both searches only propose ids; the answer is built from SQLite rows that are active, visible to this
(repo, session) and not shadowed by a narrower scope's value for the same key or preference slot. So neither a stale
vector row nor an FTS entry can surface a superseded or forgotten text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import indexing
from .index import visibility_filter
from .types import Hit, Item, RecallResult
from .view import resolve, subject_of

if TYPE_CHECKING:
    from .store import MemoryStore

RRF_K = 60  # the usual reciprocal-rank-fusion constant: rank 1 scores 1/61, rank 10 scores 1/70
POOL = 4  # each search proposes k * POOL candidates before the join and the fusion


# Words that match most memories add cost to BM25 ranking and nothing to the result.
STOPWORDS = frozenset("""a an and are as at be by do does for from how i in is it me my of on or our should that the
    this to was we what when where which who why will with you your""".split())


def fts_query(query: str) -> str:
    """Free text to a safe FTS5 query: each word quoted (no operator injection), any of them may match."""
    words = [w for w in re.findall(r"\w+", query.lower()) if w not in STOPWORDS] or re.findall(r"\w+", query.lower())
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(words))


def _visible_sql(repo_id: str | None, session_id: str | None) -> tuple[str, list[str]]:
    return ("(i.scope = 'user' OR (i.scope = 'repo' AND i.owner = ?) OR (i.scope = 'session' AND i.owner = ?))",
            [repo_id or "", session_id or ""])


def _fts(store: MemoryStore, query: str, repo_id: str | None, session_id: str | None, limit: int) -> list[str]:
    match = fts_query(query)
    if not match:
        return []
    visible, params = _visible_sql(repo_id, session_id)
    rows = store.rows(f"SELECT i.id FROM items_fts f JOIN items i ON i.seq = f.rowid WHERE items_fts MATCH ? "
                      f"AND i.status = 'active' AND {visible} ORDER BY bm25(items_fts), i.seq DESC LIMIT ?",
                      [match, *params, limit])
    return [r["id"] for r in rows]


def _vector(store: MemoryStore, query: str, repo_id: str | None, session_id: str | None,
            limit: int) -> tuple[list[str], str]:
    index, note = indexing.sync(store)
    if index is None:
        return [], note
    model, _ = indexing.embedder(store)
    assert model is not None
    vector = store._query_vectors.get(query)
    if vector is None:
        vector = model.embed([query])[0]
        if len(store._query_vectors) > 256:
            store._query_vectors.clear()
        store._query_vectors[query] = vector
    where = visibility_filter(repo_id, session_id)
    try:
        found = index.search(vector, where, limit)
    except (OSError, ValueError) as exc:  # Lance's IO errors: files of the index deleted or damaged by hand
        # The index is only a cache of SQLite: throw it away and build it again, then search once more.
        indexing.discard(store, index)
        index, _ = indexing.sync(store)
        assert index is not None
        found = index.search(vector, where, limit)
        note = f"the vector index was damaged ({str(exc).splitlines()[0][:120]}) and has been rebuilt"
    return [item_id for item_id, _ in found], note


def recall(store: MemoryStore, query: str, *, repo_id: str | None, session_id: str | None, k: int,
           scope: str | None) -> RecallResult:
    query = query.strip()
    if not query:
        return RecallResult(hits=[], note="empty query")
    fts_ids = _fts(store, query, repo_id, session_id, k * POOL)
    vec_ids, note = _vector(store, query, repo_id, session_id, k * POOL)
    scores: dict[str, float] = {}
    sources: dict[str, list[str]] = {}
    for name, ids in (("fts", fts_ids), ("vector", vec_ids)):
        for rank, item_id in enumerate(ids):
            scores[item_id] = scores.get(item_id, 0.0) + 1.0 / (RRF_K + rank + 1)
            sources.setdefault(item_id, []).append(name)
    if not scores:
        return RecallResult(hits=[], note=note)
    # The join: only rows that are active now, visible here, and not shadowed by a narrower scope.
    candidates = {i.id: i for i in _rows(store, list(scores), repo_id, session_id)}
    effective = _not_shadowed(store, list(candidates.values()), repo_id, session_id)
    hits = [Hit(item=candidates[i], score=scores[i], sources=sources[i]) for i in scores
            if i in effective and (scope is None or candidates[i].scope == scope)]
    hits.sort(key=lambda h: (-h.score, -h.item.seq))
    return RecallResult(hits=hits[:k], note=note)


def _not_shadowed(store: MemoryStore, items: list[Item], repo_id: str | None, session_id: str | None) -> set[str]:
    """Ids of the items that are the effective value for their key or preference slot here (others always are)."""
    keys = sorted({i.key for i in items if i.key is not None})
    slots = sorted({i.slot for i in items if i.key is None and i.slot and i.kind == "preference"})
    visible, params = _visible_sql(repo_id, session_id)
    rivals: list[Item] = []
    if keys:
        rivals += [Item.from_row(r) for r in store.rows(
            f"SELECT * FROM items i WHERE i.status = 'active' AND {visible} AND i.key IN ({','.join('?' * len(keys))})",
            [*params, *keys])]
    if slots:
        rivals += [Item.from_row(r) for r in store.rows(
            f"SELECT * FROM items i WHERE i.status = 'active' AND {visible} AND i.key IS NULL AND i.kind = 'preference' "
            f"AND i.slot IN ({','.join('?' * len(slots))})", [*params, *slots])]
    grouped = {i.id for i in rivals}
    effective, _ = resolve([i for i in items if i.id not in grouped and subject_of(i) is None] + rivals)
    return {i.id for i in effective}


def _rows(store: MemoryStore, ids: list[str], repo_id: str | None, session_id: str | None) -> list[Item]:
    visible, params = _visible_sql(repo_id, session_id)
    rows = store.rows(f"SELECT * FROM items i WHERE i.status = 'active' AND {visible} "
                      f"AND i.id IN ({','.join('?' * len(ids))})", [*params, *ids])
    return [Item.from_row(r) for r in rows]
