"""Keeping the LanceDB index in step with SQLite, and the embedding cache.

SQLite marks each item `indexed` while the index holds a row for it. Writes only touch SQLite (fast, and
they work with no embedder at all); the next search brings the index up to date: it embeds and adds active
items not yet indexed, and removes rows of items that were superseded. A missing index directory (deleted
by the user) or one built by another embedder is rebuilt from SQLite and the embedding cache.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .embed import Embedder, LazyEmbedder

if TYPE_CHECKING:
    import numpy as np

    from .index import VectorIndex
    from .store import MemoryStore

LOAD_WAIT_S = 60.0


def embedder(store: MemoryStore) -> tuple[Embedder | None, str]:
    """The embedder, or None and the reason vector search is off."""
    if store.embedder is None:
        return None, "vector search is off (no embedder configured); results are from full-text search only"
    if isinstance(store.embedder, LazyEmbedder):
        loaded = store.embedder.get(LOAD_WAIT_S)
        if loaded is None:
            why = store.embedder.error or f"still loading after {LOAD_WAIT_S:.0f} s"
            return None, f"vector search unavailable (embedding model: {why}); results are from full-text search only"
        return loaded, ""
    return store.embedder, ""


def cache_key(store: MemoryStore, model_id: str, text: str) -> str:
    # Salted per store: the cache must not be a lookup table of plain text hashes (forget deletes the row too).
    return hashlib.blake2b(f"{model_id}\x00{text}".encode(), key=store.salt, digest_size=20).hexdigest()


def vectors(store: MemoryStore, model: Embedder, texts: list[str]) -> np.ndarray:
    """Vectors for texts, from the cache where possible; new ones are embedded and cached."""
    import numpy as np

    keys = [cache_key(store, model.model_id, t) for t in texts]
    found: dict[str, Any] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        for row in store.rows(f"SELECT hash, vector FROM embed_cache WHERE hash IN ({','.join('?' * len(chunk))})", chunk):
            found[row["hash"]] = np.frombuffer(row["vector"], dtype=np.float32)
    missing = sorted({i for i, k in enumerate(keys) if k not in found}, key=lambda i: keys[i])
    if missing:
        fresh = model.embed([texts[i] for i in missing])
        with store.write() as db:
            for i, vec in zip(missing, fresh):
                found[keys[i]] = vec
                db.execute("INSERT OR REPLACE INTO embed_cache (hash, model, vector) VALUES (?, ?, ?)",
                           [keys[i], model.model_id, vec.astype(np.float32).tobytes()])
    return np.stack([found[k] for k in keys]) if keys else np.zeros((0, model.dim), dtype=np.float32)


def open_index(store: MemoryStore, model: Embedder) -> VectorIndex:
    from .index import VectorIndex

    if store._index is None or store._index.model_id != model.model_id:
        store._index = VectorIndex(store.lance_path, model.dim, model.model_id)
    return store._index


def sync(store: MemoryStore) -> tuple[VectorIndex | None, str]:
    """Bring the index up to date with SQLite; returns it (None when vector search is unavailable) and a note."""
    model, note = embedder(store)
    if model is None:
        return None, note
    index = open_index(store, model)
    built_by = store.rows("SELECT value FROM meta WHERE key = 'index_model'")
    indexed = store.rows("SELECT count(*) AS n FROM items WHERE indexed = 1")[0]["n"]
    lost = indexed > 0 and not index.exists()
    if lost or not built_by or built_by[0]["value"] != model.model_id:
        with store.write() as db:
            # Start from nothing: every active item is re-added below (vectors mostly from the cache).
            db.execute("UPDATE items SET indexed = 0 WHERE indexed = 1")
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('index_model', ?)", [model.model_id])
        if lost:
            note = "the vector index was missing and has been rebuilt from the memory database"
    stale = [r["id"] for r in store.rows("SELECT id FROM items WHERE indexed = 1 AND status != 'active'")]
    if stale:
        index.remove(stale, purge=False)  # superseded text is still in SQLite; forget is what purges
        _mark(store, stale, 0)
    pending = store.rows("SELECT id, scope, owner, repo_id, kind, text FROM items WHERE indexed = 0 AND status = 'active' "
                         "ORDER BY seq")
    if pending:
        vecs = vectors(store, model, [r["text"] for r in pending])
        with store.sync_lock():
            # Under the lock forget holds while it purges: an item forgotten since the read above must not be
            # added back as an orphan row that no later purge would know about.
            alive = {r["id"] for r in store.rows("SELECT id FROM items WHERE indexed = 0 AND status = 'active'")}
            keep = [n for n, r in enumerate(pending) if r["id"] in alive]
            index.add([pending[n] for n in keep], vecs[keep])
            _mark(store, [pending[n]["id"] for n in keep], 1)
    return index, note


def discard(store: MemoryStore, index: VectorIndex) -> None:
    """Delete the index directory; the next sync sees it missing and rebuilds it from SQLite."""
    import shutil

    with store.sync_lock(), index.locked():
        shutil.rmtree(index.path, ignore_errors=True)


def _mark(store: MemoryStore, ids: list[str], value: int) -> None:
    with store.write() as db:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            db.execute(f"UPDATE items SET indexed = ? WHERE id IN ({','.join('?' * len(chunk))})", [value, *chunk])
