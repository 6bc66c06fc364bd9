"""Two real processes writing the same store at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dsv4.memory import HashingEmbedder, MemoryStore

from .conftest import REPO

WRITER = """
import sys, json
from pathlib import Path
from dsv4.memory import HashingEmbedder, MemoryStore
home, name, start = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
store = MemoryStore.open(home, embedder=HashingEmbedder())
while not start.exists():
    pass
ids = []
for n in range(25):
    ids.append(store.remember(f"{name} value {n}", key="shared key", repo_id="%s").item.id)
    store.remember(f"{name} note {n}", repo_id="%s")
    if n %% 5 == 0:
        store.recall(f"{name} note", repo_id="%s")
print(json.dumps(ids))
""" % (REPO, REPO, REPO)


def test_two_writers_keep_one_active_value_and_a_linear_history(dsv4_home: Path, tmp_path: Path) -> None:
    MemoryStore.open(dsv4_home, embedder=None).close()
    start = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(dsv4_home), name, str(start)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("alpha", "beta")]
    start.touch()
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outputs]
    store = MemoryStore.open(dsv4_home, embedder=HashingEmbedder())
    history = store.history("shared key", REPO)
    assert len(history) == 50
    active = [i for i in history if i.status == "active"]
    assert len(active) == 1
    # Every value was superseded by exactly the next write of the key, whichever process made it.
    for older, newer in zip(history, history[1:]):
        assert older.superseded_by == newer.id
    assert len(store.list(REPO, None)) == 51  # 50 notes + the one current value
    block = store.current_view(REPO, None, budget_tokens=10_000)
    assert active[0].text in block.text and sum(f"value {n}\n" in block.text for n in range(25)) == 1
    hits = store.recall("alpha note", repo_id=REPO, k=50)
    assert hits.note == "" and all(h.item.status == "active" for h in hits.hits)
    assert {h.item.id for h in hits.hits} <= {i.id for i in store.list(REPO, None)}
    ids = [json.loads(o[0]) for o in outputs]
    assert {i.id for i in history} == set(ids[0]) | set(ids[1])
