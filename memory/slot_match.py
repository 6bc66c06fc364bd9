"""Which active preference a new unkeyed preference replaces: the occupant of its subject slot.

Rule 1: an active preference of the same scope owner with exactly the same slot (memory/slots.py); the
newest one when several share it. Rule 2, only when rule 1 finds nothing and both slots had a value removed:
the active preference whose slot string is most similar by embedding, when the cosine similarity is at
least the threshold calibrated for that embedder on the labelled pairs of evals/memory/slots_bench.py.
An embedder without a calibrated threshold (or no embedder at all) leaves rule 1 alone. Both rules are
deterministic functions of the texts: no model decides what is current.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import indexing
from .slots import Subject, subject
from .types import Item

if TYPE_CHECKING:
    from .store import MemoryStore

# Cosine similarity of two slot strings at or above which they are one subject. Calibrated by
# `evals/memory/slots_bench.py` (results in evals/results/memory_slots.json): the threshold with the best F1
# among those whose precision on the labelled pairs is at least 0.98, since a false match replaces a
# preference the user still wants (they see "replaces: ..." and can undo, but should rarely have to).
THRESHOLDS: dict[str, float] = {"all-MiniLM-L6-v2": 0.56, "hashing-256": 0.57}


@dataclass
class Occupant:
    item: Item
    rule: str  # "slot" (the same slot) or "similar slot 0.87" (rule 2, with its similarity)


def occupant(store: MemoryStore, scope: str, owner: str, new: Subject) -> Occupant | None:
    rows = store.rows("SELECT * FROM items WHERE status = 'active' AND kind = 'preference' AND scope = ? AND owner = ? "
                      "AND slot IS NOT NULL ORDER BY seq DESC", [scope, owner])
    items = [Item.from_row(r) for r in rows]
    for item in items:
        if item.slot == new.slot:
            return Occupant(item, "slot")
    if not new.valued:
        return None
    rivals = [i for i in items if _valued(i)]
    if not rivals:
        return None
    model, _ = indexing.embedder(store)
    threshold = THRESHOLDS.get(model.model_id) if model is not None else None
    if model is None or threshold is None:
        return None
    best, score = None, threshold
    for item, similarity in zip(rivals, similarities(store, model, new.slot, [i.slot or "" for i in rivals])):
        if similarity >= score and (best is None or similarity > score):  # ties keep the newest (rows are newest first)
            best, score = item, similarity
    return Occupant(best, f"similar slot {score:.2f}") if best is not None else None


def holder(db: Any, scope: str, owner: str, new: Subject) -> str | None:
    """Rule 1 alone, inside the caller's write transaction: the id of the newest active occupant, if any."""
    row = db.execute("SELECT id FROM items WHERE status = 'active' AND kind = 'preference' AND scope = ? AND owner = ? "
                     "AND slot = ? ORDER BY seq DESC", [scope, owner, new.slot]).fetchone()
    return row[0] if row else None


def _valued(item: Item) -> bool:
    found = subject(item.text)
    return found is not None and found.valued and found.slot == item.slot


def similarities(store: MemoryStore, model: indexing.Embedder, slot: str, others: list[str]) -> list[float]:
    """Cosine similarity of `slot` with each of `others`. Slot vectors live in this process only (never in
    the embedding cache, which forget would have to know about); the cache keeps only the slots asked now."""
    import numpy as np

    cache = store._slot_vectors
    wanted = list(dict.fromkeys([slot, *others]))
    missing = [s for s in wanted if s not in cache]
    if missing:
        for text, vector in zip(missing, model.embed(missing)):
            cache[text] = np.asarray(vector, dtype=np.float32)
    for stale in set(cache) - set(wanted):
        del cache[stale]
    query = cache[slot]
    return [float(np.dot(query, cache[o])) for o in others]
