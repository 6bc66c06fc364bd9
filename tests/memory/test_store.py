from __future__ import annotations

import sqlite3

import pytest

from dsv4.memory import InvalidInput, MemoryStore, NotFound, PinnedOverBudget

from .conftest import OTHER_REPO, REPO


def test_keyed_write_supersedes_and_only_the_new_value_is_current(store: MemoryStore) -> None:
    first = store.remember("Use tabs for indentation.", key="indentation", repo_id=REPO, kind="preference")
    second = store.remember("Use 4 spaces for indentation.", key="Indentation ", repo_id=REPO, kind="preference")
    assert second.superseded is not None and second.superseded.id == first.item.id
    current = store.effective(REPO, None)
    assert [i.text for i in current] == ["Use 4 spaces for indentation."]
    old = store.get(first.item.id)
    assert old.status == "superseded" and old.superseded_by == second.item.id and old.superseded_at
    assert [i.status for i in store.history("indentation", REPO)] == ["superseded", "active"]


def test_same_text_again_is_not_a_new_version(store: MemoryStore) -> None:
    a = store.remember("Use tabs.", key="indentation", repo_id=REPO)
    b = store.remember("Use tabs.", key="indentation", repo_id=REPO)
    assert b.unchanged and b.item.id == a.item.id
    assert len(store.history("indentation", REPO)) == 1


def test_unkeyed_supersede_by_id(store: MemoryStore) -> None:
    a = store.remember("The API is at /v1.", repo_id=REPO)
    b = store.remember("The API is at /v2.", supersedes=a.item.id, repo_id=REPO)
    assert b.superseded.id == a.item.id
    assert [i.text for i in store.effective(REPO, None)] == ["The API is at /v2."]
    with pytest.raises(InvalidInput, match="already superseded"):
        store.remember("The API is at /v3.", supersedes=a.item.id, repo_id=REPO)


def test_precedence_session_over_repo_over_user(store: MemoryStore) -> None:
    store.remember("user value", key="k", scope="user")
    assert [i.text for i in store.effective(REPO, "s1")] == ["user value"]
    store.remember("repo value", key="k", scope="repo", repo_id=REPO)
    assert [i.text for i in store.effective(REPO, "s1")] == ["repo value"]
    assert [i.text for i in store.effective(OTHER_REPO, "s1")] == ["user value"]  # other repos see the user value
    store.remember("session value", key="k", scope="session", repo_id=REPO, session_id="s1")
    assert [i.text for i in store.effective(REPO, "s1")] == ["session value"]
    assert [i.text for i in store.effective(REPO, "s2")] == ["repo value"]


def test_scopes_do_not_leak(store: MemoryStore) -> None:
    store.remember("secret of repo b", repo_id=OTHER_REPO)
    store.remember("session two only", scope="session", repo_id=REPO, session_id="s2")
    assert store.effective(REPO, "s1") == []
    assert store.current_view(REPO, "s1").text == ""


@pytest.mark.parametrize("kwargs, message", [
    ({"text": "   "}, "empty"),
    ({"text": "x", "scope": "team"}, "unknown scope"),
    ({"text": "x", "kind": "rule"}, "unknown kind"),
    ({"text": "x", "key": "  "}, "key is empty"),
    ({"text": "x", "scope": "session"}, "needs a session"),
    ({"text": "x" * 5000}, "at most"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(store: MemoryStore, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.remember(**{"repo_id": REPO, **kwargs})
    assert store.export()["items"] == []


def test_supersede_across_scopes_is_refused(store: MemoryStore) -> None:
    user = store.remember("user-wide", scope="user")
    with pytest.raises(InvalidInput, match="user-scope memory"):
        store.remember("repo", scope="repo", repo_id=REPO, supersedes=user.item.id)


def test_unknown_ids(store: MemoryStore) -> None:
    with pytest.raises(NotFound, match="no memory"):
        store.pin("m-000000000000")
    with pytest.raises(NotFound):
        store.forget("m-000000000000")
    item = store.remember("gone soon", repo_id=REPO).item
    store.forget(item.id)
    with pytest.raises(NotFound, match="was forgotten at"):
        store.forget(item.id)


def test_the_database_enforces_one_active_value_per_key(store: MemoryStore) -> None:
    store.remember("a", key="k", repo_id=REPO)
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("INSERT INTO items (id, scope, owner, key, text, kind, status, created_at) "
                         "VALUES ('m-x', 'repo', ?, 'k', 'b', 'fact', 'active', 'now')", [REPO])


def test_pin_over_budget_is_refused_and_nothing_changes(dsv4_home) -> None:
    store = MemoryStore.open(dsv4_home, embedder=None, budget_tokens=120)
    a = store.remember("short pinned fact", repo_id=REPO, pin=True)
    with pytest.raises(PinnedOverBudget, match="unpin some of"):
        store.remember("a long pinned fact " * 20, repo_id=REPO, pin=True)
    b = store.remember("a long fact " * 20, repo_id=REPO)
    with pytest.raises(PinnedOverBudget):
        store.pin(b.item.id, REPO)
    assert not store.get(b.item.id).pinned
    assert store.current_view(REPO, None).pinned_ids == [a.item.id]


def test_superseding_a_pinned_item_keeps_the_pin(store: MemoryStore) -> None:
    store.remember("Use tabs.", key="indentation", repo_id=REPO, pin=True)
    new = store.remember("Use spaces.", key="indentation", repo_id=REPO)
    assert new.item.pinned
    assert store.current_view(REPO, None).pinned_ids == [new.item.id]


def test_state_survives_a_restart(dsv4_home, store: MemoryStore) -> None:
    store.remember("Use tabs.", key="indentation", repo_id=REPO, pin=True)
    store.remember("Use spaces.", key="indentation", repo_id=REPO)
    before = store.current_view(REPO, None).text
    store.close()
    reopened = MemoryStore.open(dsv4_home, embedder=None)
    assert reopened.current_view(REPO, None).text == before
    assert "Use tabs." not in before


def test_export_has_everything_and_tombstones_have_no_text(store: MemoryStore) -> None:
    kept = store.remember("kept", repo_id=REPO).item
    gone = store.remember("zebra-secret", repo_id=REPO).item
    store.forget(gone.id, reason="user asked")
    doc = store.export()
    assert [i["id"] for i in doc["items"]] == [kept.id]
    assert doc["tombstones"][0]["id"] == gone.id and doc["tombstones"][0]["reason"] == "user asked"
    assert "zebra" not in str(doc)
    assert set(doc["tombstones"][0]) == {"id", "forgotten_at", "reason", "complete"}


def test_provenance_is_recorded(store: MemoryStore) -> None:
    item = store.remember("fact", repo_id=REPO, session_id="s9", turn=4, actor="agent").item
    got = store.get(item.id)
    assert (got.session_id, got.turn, got.actor, got.repo_id) == ("s9", 4, "agent", REPO)


def test_a_locked_database_is_a_clear_error_and_nothing_is_lost(dsv4_home) -> None:
    from dsv4.memory import StoreUnavailable

    store = MemoryStore.open(dsv4_home, embedder=None, busy_timeout_s=0.2)
    kept = store.remember("written before the lock", repo_id=REPO).item
    other = sqlite3.connect(store.db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreUnavailable, match="locked by another process"):
        store.remember("written during the lock", repo_id=REPO)
    other.execute("ROLLBACK")
    other.close()
    assert [i.id for i in store.list(REPO)] == [kept.id]
    assert store.remember("written after the lock", repo_id=REPO).item


def test_a_damaged_page_is_reported_on_open(dsv4_home) -> None:
    from dsv4.memory import StoreUnavailable

    store = MemoryStore.open(dsv4_home, embedder=None)
    for n in range(200):
        store.remember(f"memory {n} " + "x" * 200, repo_id=REPO)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    path = dsv4_home / "memory" / "memory.db"
    data = bytearray(path.read_bytes())
    data[4096 * 3:4096 * 3 + 64] = b"\xff" * 64  # scribble over a b-tree page header
    path.write_bytes(bytes(data))
    with pytest.raises(StoreUnavailable, match="damaged|unreadable"):
        MemoryStore.open(dsv4_home, embedder=None)
