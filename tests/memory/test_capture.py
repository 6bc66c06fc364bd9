from __future__ import annotations

import pytest

from dsv4.memory import MemoryStore, capture_preferences

from .conftest import REPO


@pytest.mark.parametrize("message, expected", [
    ("From now on, use tabs for indentation.", [("Use tabs for indentation.", "indentation", "repo")]),
    ("Fix the bug in calc.py and from now on run pytest -q.", [("Run pytest -q.", "test runner", "repo")]),
    ("Always run the tests before committing.", [("Always run the tests before committing.",
                                                  "run test before committing", "repo")]),
    ("Please always answer in English in all my projects.", [("Always answer in English.", "reply language", "user")]),
    ("For this session, never touch the migrations folder.", [("Never touch the migrations folder.",
                                                               "touch migration folder", "session")]),
    ("Use double quotes from now on.", [("Use double quotes.", "quote style", "repo")]),
    ("don't ever push to main", [("Don't ever push to main.", "push to main", "repo")]),
])
def test_explicit_statements_are_captured_with_deterministic_slots(message: str, expected: list) -> None:
    assert [(c.text, c.slot, c.scope) for c in capture_preferences(message)] == expected
    assert all(c.kind == "preference" and c.key is None for c in capture_preferences(message))


@pytest.mark.parametrize("message", [
    "Never mind, that was fine.",
    "It always fails on CI.",
    "Does it always do that?",
    "Fix the failing test in calc.py",
    "The function never returns None.",
    "```\n# always use tabs\n```",
    "",
])
def test_non_statements_are_not_captured(message: str) -> None:
    assert capture_preferences(message) == []


def test_opposite_statements_share_a_slot_so_the_later_one_overrides(store: MemoryStore) -> None:
    for message in ("Always squash commits before merging.", "Actually, never squash commits before merging."):
        for c in capture_preferences(message):
            store.remember(c.text, key=c.key, scope=c.scope, kind=c.kind, repo_id=REPO, actor="capture")
    assert [i.text for i in store.effective(REPO, None)] == ["Never squash commits before merging."]


def test_a_new_choice_on_a_known_topic_overrides() -> None:
    first = capture_preferences("From now on use tabs.")[0]
    second = capture_preferences("Going forward, indent with 4 spaces.")[0]
    assert first.slot == second.slot == "indentation"


def test_several_statements_in_one_message() -> None:
    got = capture_preferences("ok, never use print for logging; always use the logging module. Thanks!")
    assert [c.text for c in got] == ["Never use print for logging.", "Always use the logging module."]


def test_store_capture_remembers_slotted_preferences_with_provenance(store: MemoryStore) -> None:
    first = store.capture("From now on, use tabs for indentation.", repo_id=REPO, session_id="s1", turn=3)
    assert [(r.item.slot, r.item.key, r.item.actor, r.item.turn) for r in first] == [("indentation", None, "capture", 3)]
    again = store.capture("From now on, use tabs for indentation.", repo_id=REPO, session_id="s2")
    assert again[0].unchanged
    later = store.capture("Going forward, indent with 2 spaces.", repo_id=REPO, session_id="s3")
    assert later[0].superseded.id == first[0].item.id
    assert later[0].replaces == "replaces: Use tabs for indentation."
    assert store.capture("What does this function do?", repo_id=REPO, session_id="s3") == []
