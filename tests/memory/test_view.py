from __future__ import annotations

import pytest

from dsv4.memory import MemoryStore, PinnedOverBudget
from dsv4.memory.view import HEADER

from .conftest import REPO


def test_block_text_is_exactly_the_current_items_in_write_order(store: MemoryStore) -> None:
    pin = store.remember("Run tests with pytest -q.", key="test command", repo_id=REPO, pin=True).item
    pref = store.remember("Use tabs.", key="indentation", repo_id=REPO, kind="preference").item
    note = store.remember("The parser lives in src/parse.py.", repo_id=REPO, kind="note").item
    block = store.current_view(REPO, None)
    assert block.text == (
        HEADER
        + f"\nPinned:\n- [{pin.id}] fact, repo (test command): Run tests with pytest -q.\n"
        + f"\nOther memories:\n- [{pref.id}] preference, repo (indentation): Use tabs.\n"
        + f"- [{note.id}] note, repo: The parser lives in src/parse.py.\n")
    assert block.item_ids == [pin.id, pref.id, note.id] and block.pinned_ids == [pin.id]
    assert block.tokens <= block.budget


def test_empty_store_gives_an_empty_block(store: MemoryStore) -> None:
    block = store.current_view(REPO, None)
    assert block.text == "" and block.item_ids == []


def test_new_memory_appends_so_the_prefix_stays(store: MemoryStore) -> None:
    store.remember("first", repo_id=REPO)
    before = store.current_view(REPO, None).text
    store.remember("second", repo_id=REPO)
    after = store.current_view(REPO, None).text
    assert after.startswith(before)


def test_budget_pressure_drops_unpinned_never_pinned(store: MemoryStore) -> None:
    pinned = [store.remember(f"pinned fact number {n}", repo_id=REPO, pin=True).item.id for n in range(3)]
    for n in range(60):
        store.remember(f"unpinned note number {n} with some words to take room", repo_id=REPO, kind="note")
    block = store.current_view(REPO, None, budget_tokens=300)
    assert block.tokens <= 300
    assert block.pinned_ids == pinned and all(p in block.item_ids for p in pinned)
    assert block.omitted > 0 and f"{block.omitted} more memories not shown" in block.text
    assert len(block.item_ids) == 3 + 60 - block.omitted


def test_keyed_preferences_get_room_before_notes(store: MemoryStore) -> None:
    notes = [store.remember(f"note {n} " + "filler " * 10, repo_id=REPO, kind="note").item.id for n in range(20)]
    pref = store.remember("Use tabs.", key="indentation", repo_id=REPO, kind="preference").item.id
    block = store.current_view(REPO, None, budget_tokens=150)
    assert pref in block.item_ids and not set(notes) <= set(block.item_ids)


def test_pinned_over_budget_is_an_error_not_a_truncation(store: MemoryStore) -> None:
    store.remember("pinned " * 40, repo_id=REPO, pin=True)
    with pytest.raises(PinnedOverBudget) as info:
        store.current_view(REPO, None, budget_tokens=50)
    assert info.value.budget == 50 and info.value.needed > 50


def test_query_ranks_relevant_unpinned_items_first(store: MemoryStore) -> None:
    for n in range(30):
        store.remember(f"unrelated note {n} about the weather " + "filler " * 8, repo_id=REPO, kind="note")
    db_item = store.remember("The database migrations run with alembic upgrade head.", repo_id=REPO, kind="note").item
    block = store.current_view(REPO, None, budget_tokens=120, query="how do I run database migrations")
    assert db_item.id in block.item_ids


def test_shadowed_user_value_is_not_in_the_block(store: MemoryStore) -> None:
    user = store.remember("Answer in German.", key="reply language", scope="user").item
    repo = store.remember("Answer in English.", key="reply language", repo_id=REPO).item
    block = store.current_view(REPO, None)
    assert repo.id in block.item_ids and user.id not in block.item_ids and block.shadowed == [user.id]
    assert "German" not in block.text


def test_custom_token_counter(store: MemoryStore) -> None:
    store.remember("one two three", repo_id=REPO)
    words = store.current_view(REPO, None, count_tokens=lambda s: len(s.split()))
    assert words.tokens == len(words.text.split())
