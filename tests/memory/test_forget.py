from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsv4.agent.messages import Message, ToolCall
from dsv4.agent.sessions import SessionStore
from dsv4.memory import HashingEmbedder, MemoryStore, NotFound
from dsv4.memory import bytescan, snapshots
from dsv4.memory.snapshots import Snapshot
from dsv4.memory.spans import distinctive_spans, memory_spans

from .conftest import REPO, files_containing

MARKER = "zq7-marker-ultraviolet-42"
TEXT = f"The deploy password hint is {MARKER}, keep it secret."


def _plant(home: Path, store: MemoryStore) -> tuple[str, SessionStore, str]:
    sessions = SessionStore(home / "sessions.db")
    store.log_redactor = sessions.redact  # as the agent wires it: the session store redacts its own log
    session = sessions.create(REPO, home, "test-model")
    sessions.append_message(session, 1, Message(role="user", content=f"Remember this: {TEXT}"))
    call = ToolCall(id="c1", name="remember", arguments=json.dumps({"text": TEXT, "key": "deploy hint"}))
    sessions.append_message(session, 1, Message(role="assistant", content="", tool_calls=[call]))
    item = store.remember(TEXT, key="deploy hint", repo_id=REPO, session_id=session, turn=1, actor="agent").item
    sessions.append_message(session, 1, Message(role="tool", tool_call_id="c1", name="remember",
                                                content=f"remembered {item.id} ({TEXT})"))
    kv = home / "kv" / "cold"
    kv.mkdir(parents=True)
    (kv / "a.kv").write_bytes(b"\x00header" + TEXT.encode() + b"\x00kv-bytes")
    (kv / "b.kv").write_bytes(b"other prefix that quoted the turn: " + TEXT.encode())
    (kv / "c.kv").write_bytes(b"an unrelated snapshot")
    snapshots.register(store, Snapshot(id="kv-a", path=str(kv / "a.kv"), tier="cold", model_key="m", prefix_hash="p1",
                                       tokens=100, bytes=10, checksum="x", memory_ids=[item.id],
                                       files={"src/x.py": "h1"}))
    snapshots.register(store, Snapshot(id="kv-b", path=str(kv / "b.kv"), tier="warm", model_key="m", prefix_hash="p2",
                                       tokens=100, bytes=10, checksum="x", turns=[(session, 1, 1)]))
    snapshots.register(store, Snapshot(id="kv-c", path=str(kv / "c.kv"), tier="warm", model_key="m", prefix_hash="p3",
                                       tokens=100, bytes=10, checksum="x"))
    return item.id, sessions, session


def test_forget_leaves_no_trace_anywhere_under_home(dsv4_home: Path, store: MemoryStore) -> None:
    for n in range(300):  # filler, so the item is one small deletion among many rows and pages
        store.remember(f"filler memory number {n} about module {n % 17}", repo_id=REPO)
    item_id, sessions, session = _plant(dsv4_home, store)
    assert store.recall(MARKER, repo_id=REPO).items[0].id == item_id  # indexed in FTS and LanceDB
    vector = HashingEmbedder().embed([TEXT])[0].tobytes()
    assert files_containing(dsv4_home, MARKER.encode())
    assert files_containing(dsv4_home / "memory" / "index", vector[:64])
    spans = [TEXT, *distinctive_spans(TEXT)]
    assert MARKER in spans
    owned = [dsv4_home / "memory", dsv4_home / "kv"]  # everything memory writes
    assert "raw" in {t.form for root in owned for t in bytescan.scan(root, spans)}  # the probe sees them

    done = store.forget(item_id)

    assert [str(t) for root in owned for t in bytescan.scan(root, spans)] == []

    assert done.ids == [item_id] and done.snapshots_deleted == 2 and done.events_redacted >= 3
    assert files_containing(dsv4_home, MARKER.encode()) == []
    assert files_containing(dsv4_home, vector[:64]) == []  # the vector bytes are gone too, not just hidden
    # exact, FTS and vector probes
    assert store.rows("SELECT * FROM items WHERE text LIKE ?", [f"%{MARKER}%"]) == []
    assert store.rows("SELECT rowid FROM items_fts WHERE items_fts MATCH ?", ['"ultraviolet"']) == []
    assert store.recall(TEXT, repo_id=REPO).items == [] or item_id not in {i.id for i in store.recall(TEXT, repo_id=REPO).items}
    index_ids = store._index.ids()
    assert item_id not in index_ids and len(index_ids) == 300
    # LanceDB time travel: only the latest version is left, and no version has the row
    table = store._index._open(False)
    versions = table.list_versions()
    assert len(versions) == 1
    for version in versions:
        table.checkout(version["version"])
        assert item_id not in table.to_arrow().column("id").to_pylist()
    # KV snapshots covering the item or the redacted turns are gone, others stay
    assert [s.id for s in snapshots.all_snapshots(store)] == ["kv-c"]
    assert sorted(p.name for p in (dsv4_home / "kv" / "cold").iterdir()) == ["c.kv"]
    # the session log still loads, with the text replaced in place
    messages = sessions.messages(session)
    assert f"[forgotten memory {item_id}]" in messages[0].content
    assert json.loads(messages[1].tool_calls[0].arguments)["text"] == f"[forgotten memory {item_id}]"
    assert MARKER not in sessions.get(session).title
    # the tombstone
    [tomb] = store.tombstones()
    assert tomb.id == item_id and tomb.complete


def test_forgetting_the_new_value_does_not_resurrect_the_old(store: MemoryStore) -> None:
    store.remember("Use tabs.", key="indentation", repo_id=REPO)
    new = store.remember("Use spaces.", key="indentation", repo_id=REPO).item
    done = store.forget(new.id)
    assert len(done.ids) == 2  # the superseded value goes with it
    assert store.effective(REPO, None) == [] and store.history("indentation", REPO) == []
    assert store.recall("tabs spaces indentation", repo_id=REPO).hits == []
    assert store.current_view(REPO, None).text == ""


def test_forget_by_key_takes_the_effective_scope(store: MemoryStore) -> None:
    user = store.remember("Answer in German.", key="reply language", scope="user").item
    store.remember("Answer in English.", key="reply language", repo_id=REPO)
    store.forget(key="reply language", repo_id=REPO)
    assert [i.id for i in store.effective(REPO, None)] == [user.id]  # the user-wide value is now in effect
    with pytest.raises(NotFound, match="exists in user scope"):
        store.forget(key="reply language", scope="repo", repo_id=REPO)


def test_forget_confirmed_recall_results(store: MemoryStore) -> None:
    a = store.remember("old staging host is alpha.example", repo_id=REPO).item
    b = store.remember("old staging host is beta.example", repo_id=REPO).item
    keep = store.remember("production host is gamma.example", repo_id=REPO).item
    found = [i.id for i in store.recall("staging host", repo_id=REPO).items if "staging" in i.text]
    store.forget(ids=found)
    assert [i.id for i in store.effective(REPO, None)] == [keep.id]
    assert {t.id for t in store.tombstones()} == {a.id, b.id}


def test_an_interrupted_forget_is_finished_on_open(dsv4_home: Path, store: MemoryStore) -> None:
    item = store.remember(TEXT, repo_id=REPO).item
    store.recall("password", repo_id=REPO)
    vector = HashingEmbedder().embed([TEXT])[0].tobytes()
    # Simulate a crash after the SQLite part of a forget: the row is gone, the tombstone incomplete,
    # the LanceDB row still there.
    with store.write() as db:
        db.execute("DELETE FROM items WHERE id = ?", [item.id])
        db.execute("INSERT INTO tombstones (id, forgotten_at, reason, complete) VALUES (?, 'then', 'test', 0)", [item.id])
    store.close()
    assert files_containing(dsv4_home / "memory" / "index", vector[:64])
    reopened = MemoryStore.open(dsv4_home, embedder=HashingEmbedder())
    assert files_containing(dsv4_home / "memory" / "index", vector[:64]) == []
    assert reopened.tombstones()[0].complete


def test_supersede_drops_kv_snapshots_that_hold_the_old_value(dsv4_home: Path, store: MemoryStore) -> None:
    old = store.remember("Use tabs.", key="indentation", repo_id=REPO).item
    path = dsv4_home / "snap.kv"
    path.write_bytes(b"kv")
    snapshots.register(store, Snapshot(id="", path=str(path), tier="hot", model_key="m", prefix_hash="p",
                                       tokens=1, bytes=2, checksum="c", memory_ids=[old.id]))
    store.remember("Use spaces.", key="indentation", repo_id=REPO)
    assert snapshots.all_snapshots(store) == [] and not path.exists()


def test_forget_works_without_an_embedder(dsv4_home: Path, store: MemoryStore) -> None:
    item = store.remember(TEXT, repo_id=REPO).item
    store.recall("password", repo_id=REPO)
    store.close()
    vector = HashingEmbedder().embed([TEXT])[0].tobytes()
    plain = MemoryStore.open(dsv4_home, embedder=None)
    plain.forget(item.id)
    assert files_containing(dsv4_home, vector[:64]) == [] and files_containing(dsv4_home, MARKER.encode()) == []


def test_forgetting_a_captured_override_purges_every_value_of_the_slot(dsv4_home: Path, store: MemoryStore) -> None:
    first = store.capture(f"From now on, always run the tests with pytest --hint={MARKER}", repo_id=REPO,
                          session_id="s1")[0].item
    store.recall("run the tests", repo_id=REPO)  # indexed, so LanceDB holds its vector
    second = store.capture("Going forward, run the tests with nox -s tests.", repo_id=REPO, session_id="s2")[0]
    assert second.superseded.id == first.id and second.rule == "slot"
    spans = sorted({s for item in (first, second.item) for s in memory_spans(item.text)})
    assert {MARKER, "nox -s tests", f"pytest --hint={MARKER}", first.text, second.item.text} <= set(spans)
    assert bytescan.scan(dsv4_home / "memory", spans)

    done = store.forget(second.item.id)

    assert set(done.ids) == {first.id, second.item.id}
    assert [str(t) for t in bytescan.scan(dsv4_home / "memory", spans)] == []
    assert store.current_view(REPO, None).text == ""


def test_forget_clears_the_slot_and_query_vectors_this_process_kept(store: MemoryStore) -> None:
    store.capture("From now on, store build artifacts in out/qzdir.", repo_id=REPO, session_id="s")
    [done] = store.capture("From now on, keep release notes in docs/qznotes.", repo_id=REPO, session_id="s")
    store.recall("release notes qznotes", repo_id=REPO)
    assert store._slot_vectors and store._query_vectors  # rule 2 compared the two slots; recall kept its query
    store.forget(done.item.id)
    assert store._slot_vectors == {} and store._query_vectors == {}
