"""Undo of a replacement: the front end shows "replaces: ..." beside a new value with one key to undo it.

Two meanings, both offered: the slot rule matched two different subjects (keep_new: both values stay active;
a key the new item only inherited from the old one is taken off it, since one scope holds one active item
per key), or the user did not mean to change the value (the restored value supersedes the new one, and KV
snapshots whose prefix held the new one are dropped, as for any supersede). Either way nothing is deleted:
forgetting is a separate, explicit act.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import snapshots
from .types import InvalidInput, now

if TYPE_CHECKING:
    from .store import MemoryStore, Remembered


def undo_replace(store: MemoryStore, item_id: str, keep_new: bool) -> Remembered:
    """(restored, the undone item) for the active item `item_id` and the value it superseded."""
    from .store import Remembered

    with store.write() as db:
        new = store._active(item_id)
        found = db.execute("SELECT id FROM items WHERE superseded_by = ? ORDER BY seq DESC", [item_id]).fetchone()
        if found is None:
            raise InvalidInput(f"{item_id} replaced nothing; there is nothing to undo")
        old = store._get(found[0])
        if keep_new and new.key is not None and new.key == old.key:
            if not new.slot:
                raise InvalidInput(f"{item_id} and {old.id} share the key {old.key!r}; only one can be active "
                                   "(undo with keep_new=False, or re-key one)")
            db.execute("UPDATE items SET key = NULL WHERE id = ?", [item_id])  # it only inherited the key
            new.key = None
        if not keep_new:
            stamp = now()
            db.execute("UPDATE items SET status = 'superseded', superseded_by = ?, superseded_at = ? WHERE id = ?",
                       [old.id, stamp, item_id])
            new.status, new.superseded_by, new.superseded_at = "superseded", old.id, stamp
            stale = snapshots.covering(db, [item_id])
            snapshots.unlink_files(stale)
            snapshots.delete_rows(db, stale)
        # When both stay in one slot, the next statement of that subject replaces the newer of the two
        # (rule 1 picks the newest occupant), never both.
        db.execute("UPDATE items SET status = 'active', superseded_by = NULL, superseded_at = NULL WHERE id = ?",
                   [old.id])
        old.status, old.superseded_by, old.superseded_at = "active", None, None
    return Remembered(item=old, superseded=new, rule="undo")

