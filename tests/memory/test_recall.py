from __future__ import annotations

import shutil

from dsv4.memory import MemoryStore
from dsv4.memory.embed import LazyEmbedder

from .conftest import OTHER_REPO, REPO


def test_hybrid_recall_finds_by_words_and_by_vector(store: MemoryStore) -> None:
    target = store.remember("Deploy with make release on Fridays.", repo_id=REPO).item
    store.remember("The cat sleeps on the sofa.", repo_id=REPO)
    result = store.recall("make release", repo_id=REPO)
    assert result.items[0].id == target.id and set(result.hits[0].sources) == {"fts", "vector"}
    assert result.note == ""


def test_recall_never_returns_superseded_or_shadowed_or_foreign_items(store: MemoryStore) -> None:
    store.remember("Indent with tabs.", key="indentation", repo_id=REPO)
    current = store.remember("Indent with spaces.", key="indentation", repo_id=REPO).item
    store.remember("Indent with two spaces.", key="indentation", scope="user")
    store.remember("Indent with eight spaces.", repo_id=OTHER_REPO)
    store.remember("Indent with three spaces.", scope="session", repo_id=REPO, session_id="other-session")
    assert [i.id for i in store.recall("indent tabs spaces", repo_id=REPO, session_id="s1").items] == [current.id]


def test_recall_scope_filter_and_k(store: MemoryStore) -> None:
    for n in range(12):
        store.remember(f"fact {n} about widgets", repo_id=REPO)
    store.remember("user fact about widgets", scope="user")
    assert len(store.recall("widgets", repo_id=REPO, k=5).hits) == 5
    assert [i.scope for i in store.recall("widgets", repo_id=REPO, scope="user").items] == ["user"]


def test_query_with_fts_operators_is_safe(store: MemoryStore) -> None:
    store.remember("NEAR the AND gate OR not", repo_id=REPO)
    assert store.recall('"NEAR( AND OR * -', repo_id=REPO).hits
    assert store.recall("   ", repo_id=REPO).hits == []


def test_embedder_that_fails_to_load_falls_back_to_fts_and_says_so(dsv4_home) -> None:
    class Broken:
        def __init__(self) -> None:
            raise OSError("weights file is damaged")

    store = MemoryStore.open(dsv4_home, embedder=LazyEmbedder(Broken))
    item = store.remember("Deploy with make release.", repo_id=REPO).item
    result = store.recall("make release", repo_id=REPO)
    assert result.items == [store.get(item.id)]
    assert "vector search unavailable" in result.note and "weights file is damaged" in result.note


def test_deleted_index_directory_is_rebuilt_from_sqlite(dsv4_home, store: MemoryStore) -> None:
    item = store.remember("Deploy with make release.", repo_id=REPO).item
    store.recall("deploy", repo_id=REPO)
    shutil.rmtree(store.lance_path)
    result = store.recall("deploy", repo_id=REPO)
    assert "rebuilt" in result.note
    assert result.items[0].id == item.id and "vector" in result.hits[0].sources
    assert store.recall("deploy", repo_id=REPO).note == ""


def test_index_of_another_model_is_replaced(dsv4_home) -> None:
    from dsv4.memory import HashingEmbedder

    first = MemoryStore.open(dsv4_home, embedder=HashingEmbedder(64))
    first.remember("Deploy with make release.", repo_id=REPO)
    first.recall("deploy", repo_id=REPO)
    first.close()
    second = MemoryStore.open(dsv4_home, embedder=HashingEmbedder(128))
    result = second.recall("deploy", repo_id=REPO)
    assert "vector" in result.hits[0].sources


def test_superseded_rows_leave_the_vector_index(store: MemoryStore) -> None:
    old = store.remember("Indent with tabs.", key="indentation", repo_id=REPO).item
    store.recall("indent", repo_id=REPO)
    store.remember("Indent with spaces.", key="indentation", repo_id=REPO)
    store.recall("indent", repo_id=REPO)
    assert old.id not in store._index.ids()


def test_damaged_index_files_are_rebuilt_from_sqlite(store: MemoryStore) -> None:
    item = store.remember("Deploy with make release.", repo_id=REPO).item
    store.recall("deploy", repo_id=REPO)
    for data_file in (store.lance_path / "items.lance" / "data").iterdir():
        data_file.unlink()
    result = store.recall("deploy", repo_id=REPO)
    assert "damaged" in result.note and "rebuilt" in result.note
    assert result.items[0].id == item.id and "vector" in result.hits[0].sources
