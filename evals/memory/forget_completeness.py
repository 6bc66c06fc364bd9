"""Forget-completeness suite: plant a unique marker in a memory, in the session event log (user message,
tool-call arguments, tool result, session title) and in KV snapshot files registered in the index; forget it;
then look for it everywhere.

    .venv/bin/python evals/memory/forget_completeness.py [--out evals/results/memory_forget.json]

Probes after each forget:
- bytes: every file under $DSV4_HOME, byte by byte, for the marker (UTF-8 and UTF-16), the item's vector
  (its float32 bytes) and unsalted hashes of the text (sha256, md5, blake2b hex);
- forms (memory/bytescan.py): everything memory owns ($DSV4_HOME/memory: memory.db, -wal, -shm, the LanceDB
  index; and the KV snapshot files) for the text of every forgotten value and its distinctive spans
  (memory/spans.py), raw, lower-case, JSON-escaped, base64 and UTF-16 LE/BE;
- exact (SQL LIKE), FTS (MATCH and the fts5vocab term list) and vector (recall with the exact text) queries;
- LanceDB time travel: every version still listed, checked out, must lack the row;
- the tombstone holds id, time and reason only; the session log still loads.
Variants: forget by id, by key, by ids confirmed from a recall, of a key whose old value held the marker,
and of a captured preference whose earlier value (same subject slot, marker in its value) it replaced (the
user's two sentences are in the session log, and the form scan covers all of $DSV4_HOME for them);
0, 60 or 600 other items (LanceDB only rewrites a fragment past 10 % deleted rows unless told otherwise);
with and without a second connection to the database left open. Target: 0 traces.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import platform
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from dsv4.agent.messages import Message, ToolCall
from dsv4.agent.sessions import SessionStore
from dsv4.memory import HashingEmbedder, MemoryStore
from dsv4.memory import bytescan, snapshots
from dsv4.memory.snapshots import Snapshot
from dsv4.memory.spans import memory_spans

REPO = "repo-eval"


def needles(text: str, vector: bytes, marker: str) -> dict[str, bytes]:
    return {
        "marker utf-8": marker.encode(),
        "marker utf-16": marker.encode("utf-16-le"),
        # The whole float32 vector: a slice of a sparse (hashing) vector can equal a slice of another one.
        "vector bytes": vector,
        "sha256(text)": hashlib.sha256(text.encode()).hexdigest().encode(),
        "md5(text)": hashlib.md5(text.encode()).hexdigest().encode(),
        "blake2b(text)": hashlib.blake2b(text.encode()).hexdigest().encode(),
    }


def scan(home: Path, wanted: dict[str, bytes]) -> list[str]:
    found = []
    for path in sorted(home.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{name} in {path.relative_to(home)}" for name, needle in wanted.items() if needle in data]
    return found


def scenario(home: Path, n: int, how: str, filler: int, second_connection: bool) -> dict:
    marker = f"qz{n}ultramarker{n * 7919 % 10007}"
    text = f"The staging deploy token hint is {marker} and must stay private."
    if how == "captured":
        text = f"Always run the tests with pytest --hint={marker}."  # as capture writes the statement below
    store = MemoryStore.open(home, embedder=HashingEmbedder())
    other = MemoryStore.open(home, embedder=HashingEmbedder()) if second_connection else None
    for i in range(filler):
        store.remember(f"filler memory {i} about component {i % 23}", repo_id=REPO)
    sessions = SessionStore(home / "sessions.db")
    store.log_redactor = sessions.redact  # as the agent opens memory (agent/engram.py): a forget redacts the log
    session = sessions.create(REPO, home, "eval-model")
    if how != "captured":
        sessions.append_message(session, 1, Message(role="user", content=f"Please remember: {text}"))
        call = ToolCall(id="c1", name="remember", arguments=json.dumps({"text": text, "key": "deploy token"}))
        sessions.append_message(session, 1, Message(role="assistant", content="", tool_calls=[call]))
    forgotten_texts = [text]
    if how == "captured":  # the marker is in the old value of a slot; the user forgets the value that replaced it
        sentences = [f"From now on, always run the tests with pytest --hint={marker}",
                     "Going forward, run the tests with nox."]
        sessions.append_message(session, 1, Message(role="user", content=f"Fix the build. {sentences[0]}"))
        sessions.append_message(session, 2, Message(role="user", content=f"{sentences[1]} Thanks."))
        forgotten_texts += sentences
        [first] = store.capture(sentences[0], repo_id=REPO, session_id=session, turn=1)
        item = first.item
        store.recall("run the tests", repo_id=REPO)
        [second] = store.capture("Going forward, run the tests with nox.", repo_id=REPO, session_id=session, turn=2)
        if second.superseded is None or second.superseded.id != item.id:
            raise AssertionError(f"the captured override did not replace {item.id}: {second}")
        forgotten_texts.append(second.item.text)
    elif how == "superseded":  # the marker is in the old value; the user forgets the key after overriding it
        item = store.remember(text, key="deploy token", repo_id=REPO, session_id=session, turn=1).item
        store.recall("deploy token", repo_id=REPO)
        store.remember("The deploy token hint was rotated.", key="deploy token", repo_id=REPO)
    else:
        item = store.remember(text, key="deploy token", repo_id=REPO, session_id=session, turn=1, actor="agent").item
    if how != "captured":
        sessions.append_message(session, 1, Message(role="tool", tool_call_id="c1", name="remember",
                                                    content=f"remembered {item.id}: {text}"))
    kv = home / "kv"
    kv.mkdir(exist_ok=True)
    (kv / "covering.kv").write_bytes(b"KVSNAP" + text.encode() + bytes(range(256)))
    (kv / "unrelated.kv").write_bytes(b"KVSNAP unrelated prefix")
    snapshots.register(store, Snapshot(id="kv-cover", path=str(kv / "covering.kv"), tier="cold", model_key="m",
                                       prefix_hash="p1", tokens=512, bytes=300, checksum="c", memory_ids=[item.id]))
    snapshots.register(store, Snapshot(id="kv-other", path=str(kv / "unrelated.kv"), tier="cold", model_key="m",
                                       prefix_hash="p2", tokens=512, bytes=30, checksum="c"))
    store.recall("deploy token hint", repo_id=REPO)  # index everything, so the purge has real work to do
    vector = HashingEmbedder().embed([text])[0].tobytes()
    wanted = needles(text, vector, marker)
    planted = scan(home, wanted)
    # Everything memory owns; with the captured variant the session log too (the user's own sentences).
    owned = [home] if how == "captured" else [home / "memory", kv]
    spans = sorted({s for t in forgotten_texts for s in memory_spans(t)})
    planted_forms = [t for root in owned for t in bytescan.scan(root, spans)]  # the scan sees them before

    started = time.perf_counter()
    if how == "id":
        done = store.forget(item.id)
    elif how in ("key", "superseded"):
        done = store.forget(key="deploy token", repo_id=REPO)
    elif how == "captured":
        done = store.forget(second.item.id)
    else:
        confirmed = [i.id for i in store.recall(marker, repo_id=REPO).items if marker in i.text]
        done = store.forget(ids=confirmed)
    forget_s = time.perf_counter() - started

    traces = scan(home, wanted)
    if not planted_forms:
        traces.append("the form scan found nothing even before the forget")
    traces += [f"form {t}" for root in owned for t in bytescan.scan(root, spans)]
    probes = {
        "exact": store.rows("SELECT id FROM items WHERE text LIKE ?", [f"%{marker}%"]),
        "fts": store.rows("SELECT rowid FROM items_fts WHERE items_fts MATCH ?", [f'"{marker}"']),
        "vector": [i.id for i in store.recall(text, repo_id=REPO, k=50).items if i.id in done.ids],
        "fts vocab": _vocab(store.db_path, marker),
        "time travel": _time_travel(store, done.ids),
    }
    traces += [f"{name} probe found {hits}" for name, hits in probes.items() if hits]
    tomb = next(t for t in store.tombstones() if t.id == item.id)
    if marker in json.dumps(tomb.__dict__) or not tomb.complete:
        traces.append(f"tombstone {tomb}")
    if [s.id for s in snapshots.all_snapshots(store)] != ["kv-other"] or not (kv / "unrelated.kv").exists():
        traces.append("wrong snapshots deleted or kept")
    messages = sessions.messages(session)
    if how != "captured" and f"[forgotten memory {item.id}]" not in messages[0].content:
        traces.append("session log not redacted in place")
    if how == "captured" and not (messages[0].content.startswith("Fix the build. [forgotten memory")
                                  and messages[1].content.endswith("Thanks.")):
        traces.append(f"the captured sentences not redacted in place: {[m.content for m in messages]}")
    if how == "captured" and (set(done.ids) != {item.id, second.item.id}
                              or [i for i in store.effective(REPO, None) if i.kind == "preference"]):
        traces.append(f"captured chain not forgotten whole: {done.ids}")
    for s in (store, other):
        if s is not None:
            s.close()
    sessions.close()
    return {"scenario": n, "how": how, "filler": filler, "second_connection": second_connection,
            "planted_in": len(planted), "spans_scanned": len(spans), "planted_forms": len(planted_forms), "forget_ms": round(forget_s * 1000, 1),
            "traces": traces}


def _vocab(db_path: Path, marker: str) -> list:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, 'items_fts', 'row')")
    rows = conn.execute("SELECT term FROM temp.vocab WHERE term = ?", [marker.lower()]).fetchall()
    conn.close()
    return rows


def _time_travel(store: MemoryStore, ids: list[str]) -> list:
    table = store._index._open(False)
    found = []
    for version in table.list_versions():
        table.checkout(version["version"])
        found += [(version["version"], i) for i in table.to_arrow().column("id").to_pylist() if i in ids]
    table.checkout_latest()
    return found


def run_suite(fillers: tuple[int, ...] = (0, 60, 600)) -> dict:
    rows = []
    started = time.perf_counter()
    variants = list(itertools.product(("id", "key", "confirmed", "superseded", "captured"), fillers, (False, True)))
    with tempfile.TemporaryDirectory(prefix="dsv4-forget-") as tmp:
        for n, (how, filler, second) in enumerate(variants):
            rows.append(scenario(Path(tmp) / f"home{n}", n, how, filler, second))
    return {"scenarios": len(rows), "traces": sum(len(r["traces"]) for r in rows),
            "clean": sum(1 for r in rows if not r["traces"]),
            "forget_ms_max": max(r["forget_ms"] for r in rows), "seconds": round(time.perf_counter() - started, 1),
            "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = run_suite()
    print(f"{'how':<11} {'filler':>6} {'2nd conn':>8} {'planted':>7} {'forget ms':>9}  traces")
    for r in report["rows"]:
        print(f"{r['how']:<11} {r['filler']:>6} {str(r['second_connection']):>8} {r['planted_in']:>7} "
              f"{r['forget_ms']:>9}  {len(r['traces'])} {'; '.join(r['traces'][:3])}")
    print(f"total: {report['clean']}/{report['scenarios']} scenarios clean, {report['traces']} traces, "
          f"{report['seconds']} s")
    if args.out:
        report.update(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=platform.platform(),
                      python=platform.python_version())
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["traces"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
