from __future__ import annotations

import json
from pathlib import Path

from dsv4.memory import MemoryStore
from dsv4.tools.memory_tools import MEMORY_TOOLS
from dsv4.tools.toolbox import Toolbox
from dsv4.tools.workspace import Workspace

from .conftest import REPO


def _box(tmp_path: Path, store: MemoryStore | None) -> Toolbox:
    return Toolbox(Workspace(tmp_path, repo_id=REPO, session_id="s1", memory=store), tools=MEMORY_TOOLS)


def _call(box: Toolbox, name: str, **arguments):
    tool, args = box.prepare(name, json.dumps(arguments))
    return box.execute(tool, args)


def test_remember_recall_forget_through_the_toolbox(tmp_path: Path, store: MemoryStore) -> None:
    box = _box(tmp_path, store)
    assert {s["function"]["name"] for s in box.schemas()} == {"remember", "forget", "recall"}
    first = _call(box, "remember", text="Use tabs.", key="indentation", kind="preference")
    assert not first.is_error and first.data["memory_action"] == "remembered"
    second = _call(box, "remember", text="Use spaces.", key="indentation", kind="preference")
    assert "replaces" in second.text and len(second.data["item_ids"]) == 2
    item = store.get(second.data["item_ids"][0])
    assert (item.actor, item.session_id, item.repo_id) == ("agent", "s1", REPO)
    found = _call(box, "recall", query="indentation")
    assert "Use spaces." in found.text and "Use tabs." not in found.text
    gone = _call(box, "forget", id_or_key="indentation")
    assert not gone.is_error and gone.data["memory_action"] == "forgotten"
    assert _call(box, "recall", query="indentation").text.startswith("no memories match")


def test_forget_by_id_and_errors_are_results(tmp_path: Path, store: MemoryStore) -> None:
    box = _box(tmp_path, store)
    item_id = _call(box, "remember", text="temporary").data["item_ids"][0]
    assert _call(box, "forget", id_or_key=item_id).data["item_ids"] == [item_id]
    missing = _call(box, "forget", id_or_key=item_id)
    assert missing.is_error and "was forgotten" in missing.text
    empty = _call(box, "remember", text=" ")
    assert empty.is_error and "empty" in empty.text


def test_without_a_store_the_tools_say_so(tmp_path: Path) -> None:
    result = _call(_box(tmp_path, None), "recall", query="x")
    assert result.is_error and "not enabled" in result.text
