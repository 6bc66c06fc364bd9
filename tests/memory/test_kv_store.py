"""The KV snapshot store on real files and a real memory.db: longest-prefix lookup over chained block hashes,
no false hits, corrupt files refused with a reason, forget/override deleting files and RAM copies, LRU and
RAM tier caps, the orphan sweep, and two processes racing on one store."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from dsv4.memory import MemoryStore, snapshots  # noqa: E402
from dsv4.memory.kv_store import SnapshotStore, TierCaps  # noqa: E402
from dsv4.runtime.kv.file import read_snapshot  # noqa: E402
from dsv4.runtime.kv.prefix_cache import Provenance  # noqa: E402
from dsv4.runtime.kv.snapshot import FORMAT_VERSION, KVMeta, KVSnapshot  # noqa: E402
from dsv4.runtime.kv.identity import ModelIdentity  # noqa: E402

REPO = "repo-a"


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def identity(**changes) -> str:
    base = dict(architecture="llama", weights_digest="w" * 64, tokenizer_digest="t" * 64, config={"layers": 2},
                precision="fp32", weight_format="gguf", kv_dtype="bfloat16")
    return ModelIdentity(**{**base, **changes}).digest()


ID = identity()


def fake_snapshot(tokens: list[int], ident: str = ID, seed: int = 0, architecture: str = "llama") -> KVSnapshot:
    g = torch.Generator().manual_seed(seed)
    kv = torch.randn(2, 2, 1, len(tokens), 8, generator=g).to(torch.bfloat16)
    meta = KVMeta(architecture=architecture, identity=ident, dtype="bfloat16", length=len(tokens), tokens=list(tokens),
                  lossy=["kv"])
    return KVSnapshot(meta=meta, tensors={"kv": kv, "logits": torch.randn(5, generator=g)})


def tokens(n: int, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(50_000) for _ in range(n)]


@pytest.fixture
def kv(store: MemoryStore) -> SnapshotStore:
    return SnapshotStore(store, sweep_grace_s=0)


def test_longest_prefix_lookup(kv: SnapshotStore):
    ids = tokens(300)
    # V4 snapshots (restore points): a shorter one is not made redundant by a longer one
    short, long = (fake_snapshot(ids[:n], seed=n, architecture="deepseek_v4") for n in (150, 260))
    kv.save(short)
    kv.save(long)
    hit, refused = kv.lookup(ID, ids, whole_only=False)
    assert refused == [] and hit.usable == 260 and hit.tier == "ram-hot"
    assert torch.equal(hit.snapshot.tensors["kv"], long.tensors["kv"])
    diverged = ids[:200] + [1, 2, 3] + ids[203:]  # shares 200 tokens: llama restores 3 blocks of long (192)
    hit, _ = kv.lookup(ID, diverged, whole_only=False)
    assert hit.usable == 192 and hit.snapshot.length == 260
    hit, _ = kv.lookup(ID, diverged, whole_only=True)  # V4: only a snapshot that is a whole prefix
    assert hit.usable == 150 and hit.snapshot.length == 150
    assert kv.lookup(ID, diverged, whole_only=True, longer_than=150)[0] is None
    assert kv.lookup(identity(precision="bf16"), ids, whole_only=False)[0] is None
    tiny = fake_snapshot(ids[:10], seed=3)  # shorter than one block: found by its whole-prefix hash
    kv.save(tiny)
    assert kv.lookup(ID, ids[:40], whole_only=True)[0].usable == 10
    assert sorted(s.tokens for s in snapshots.all_snapshots(kv.memory)) == [10, 150, 260]
    kv.save(fake_snapshot(ids[:100], seed=4))  # a llama snapshot restores any prefix of it: the shorter one goes
    assert sorted(s.tokens for s in snapshots.all_snapshots(kv.memory)) == [100, 150, 260]


def test_files_restore_after_a_restart(store: MemoryStore, dsv4_home: Path):
    ids = tokens(130)
    snap = fake_snapshot(ids)
    SnapshotStore(store).save(snap)
    rows = snapshots.all_snapshots(store)
    assert len(rows) == 1 and not Path(rows[0].path).is_absolute() and rows[0].path.startswith("kv/")
    assert (dsv4_home / rows[0].path).is_file()
    hit, _ = SnapshotStore(store).lookup(ID, ids + [5], whole_only=True)  # a new process: nothing in RAM
    assert hit.tier == "disk-hot" and hit.usable == 130
    assert torch.equal(hit.snapshot.tensors["kv"], snap.tensors["kv"]) and torch.equal(
        hit.snapshot.tensors["logits"], snap.tensors["logits"])


def test_cold_tier_is_int4_within_tolerance(store: MemoryStore):
    ids = tokens(128)
    snap = fake_snapshot(ids)
    snap.tensors["kv"] = torch.randn(2, 2, 1, 128, 64).to(torch.bfloat16)
    cold = SnapshotStore(store, disk_tier="cold")
    cold.save(snap)
    hot_bytes = snap.tensors["kv"].numel() * 2
    record = snapshots.all_snapshots(store)[0]
    assert record.tier == "cold" and record.bytes < 0.35 * hot_bytes + 4096
    hit, _ = SnapshotStore(store).lookup(ID, ids, whole_only=False)
    assert hit.tier == "disk-cold"
    err = (hit.snapshot.tensors["kv"].float() - snap.tensors["kv"].float()).abs()
    step = snap.tensors["kv"].float().reshape(-1, 64).aminmax(dim=1)
    assert (err.reshape(-1, 64) <= (step.max - step.min)[:, None] / 15 * 0.51 + 0.02).all()  # half a step (+fp16)
    assert torch.equal(hit.snapshot.tensors["logits"], snap.tensors["logits"])  # only K/V are lossy


def test_mutated_keys_never_hit(kv: SnapshotStore):
    """10,000 lookups with one thing changed (a token, weights, tokenizer, KV dtype, format version): no hit ever
    covers the changed token, and a changed identity never hits at all."""
    ids = tokens(140, seed=7)
    kv.save(fake_snapshot(ids))
    others = [identity(weights_digest="x" * 64), identity(tokenizer_digest="y" * 64), identity(kv_dtype="float32"),
              identity(runtime_format=FORMAT_VERSION + 1), identity(torch_version="0.0")]
    rng = random.Random(3)
    partial_hits = 0
    for trial in range(10_000):
        if trial % 5:  # one token changed
            query = list(ids)
            pos = rng.randrange(len(query))
            query[pos] = (query[pos] + rng.randrange(1, 50_000)) % 50_000
            hit, _ = kv.lookup(ID, query, whole_only=trial % 2 == 0)
            assert hit is None or (hit.usable <= pos and hit.snapshot.tokens[:hit.usable] == query[:hit.usable])
            partial_hits += hit is not None
        else:
            assert kv.lookup(others[(trial // 5) % len(others)], ids, whole_only=False)[0] is None
    assert 1000 < partial_hits < 4000  # the blocks before the changed token are still found (llama lookups)
    assert kv.lookup(ID, ids, whole_only=True)[0].usable == 140


@pytest.mark.parametrize("damage", ["truncate", "flip", "flip-header", "delete"])
def test_corrupt_files_are_refused_and_forgotten(store: MemoryStore, dsv4_home: Path, damage: str):
    ids = tokens(100)
    SnapshotStore(store).save(fake_snapshot(ids))
    path = dsv4_home / snapshots.all_snapshots(store)[0].path
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(data[: len(data) - 40])
    elif damage == "flip":
        data[-10] ^= 0x04
        path.write_bytes(data)
    elif damage == "flip-header":
        data[60] ^= 0x01
        path.write_bytes(data)
    else:
        path.unlink()
    fresh = SnapshotStore(store)  # nothing in RAM
    hit, refused = fresh.lookup(ID, ids, whole_only=False)
    assert hit is None and len(refused) == 1
    assert any(word in refused[0] for word in ("truncated", "checksum", "corrupt", "missing", "digest")), refused
    assert snapshots.all_snapshots(store) == [] and not path.exists()
    assert fresh.lookup(ID, ids, whole_only=False) == (None, [])


def test_forget_and_override_delete_files_and_ram(store: MemoryStore, kv: SnapshotStore, dsv4_home: Path):
    item = store.remember("the deploy host is blue", key="deploy", repo_id=REPO).item
    other = store.remember("tabs, not spaces", repo_id=REPO).item
    a, b = tokens(90, seed=1), tokens(90, seed=2)
    kv.save(fake_snapshot(a), Provenance(memory_ids=[item.id], files={"src/x.py": "h1"}))
    kv.save(fake_snapshot(b), Provenance(memory_ids=[other.id]))
    c = tokens(90, seed=3)
    kv.save(fake_snapshot(c), Provenance(files={"src/x.py": "h1", "README.md": "h2"}))
    assert kv.forget_files(["README.md"]) == 1 and kv.lookup(ID, c, whole_only=False)[0] is None
    files = {s.id: dsv4_home / s.path for s in snapshots.all_snapshots(store)}
    assert len(kv.ram) == 2 and all(p.exists() for p in files.values())
    store.remember("the deploy host is green", key="deploy", repo_id=REPO)  # override: the old value's KV goes
    left = snapshots.all_snapshots(store)
    assert [s.memory_ids for s in left] == [[other.id]] and len(kv.ram) == 1
    assert sum(p.exists() for p in files.values()) == 1
    assert kv.lookup(ID, a, whole_only=False)[0] is None
    assert kv.forget_files(["src/y.py"]) == 0
    done = store.forget(other.id)
    assert done.snapshots_deleted == 1 and kv.ram == {} and not any(p.exists() for p in files.values())
    assert kv.lookup(ID, b, whole_only=False)[0] is None


def test_tier_caps_demote_and_evict(store: MemoryStore):
    snap_bytes = fake_snapshot(tokens(100)).nbytes()
    kv = SnapshotStore(store, caps=TierCaps(hot_ram=2 * snap_bytes, warm_ram=snap_bytes, disk=10**9))
    seqs = [tokens(100, seed=s) for s in range(4)]
    ids = [kv.save(fake_snapshot(seq, seed=s)) for s, seq in enumerate(seqs)]
    assert [kv.ram[i].meta.tier for i in kv.ram] == ["warm", "hot", "hot"] and ids[0] not in kv.ram
    assert kv.lookup(ID, seqs[1], whole_only=False)[0].tier == "ram-warm"
    assert kv.lookup(ID, seqs[0], whole_only=False)[0].tier == "disk-hot"  # dropped from RAM, still on disk
    disk_size = snapshots.all_snapshots(store)[0].bytes
    small = SnapshotStore(store, caps=TierCaps(disk=3 * disk_size))
    small.save(fake_snapshot(tokens(100, seed=9)))  # the least recently used (seqs[2]) is evicted
    assert len(snapshots.all_snapshots(store)) == 3
    assert small.lookup(ID, seqs[2], whole_only=False)[0] is None
    assert small.lookup(ID, seqs[0], whole_only=False)[0] is not None


def test_sweep_removes_orphans_only(store: MemoryStore, kv: SnapshotStore, dsv4_home: Path):
    kv.save(fake_snapshot(tokens(70)))
    kept = dsv4_home / snapshots.all_snapshots(store)[0].path
    orphan = kept.with_name("kv-orphan.safetensors")
    orphan.write_bytes(b"left by a crash")
    tmp = kept.with_name(".kv-x.safetensors.123.tmp")
    tmp.write_bytes(b"half written")
    young = SnapshotStore(store, sweep_grace_s=3600)
    assert young.sweep() == 0 and orphan.exists()  # another process may be about to record it
    old = time.time() - 7200
    for p in (orphan, tmp):
        os.utime(p, (old, old))
    assert young.sweep() == 2 and not orphan.exists() and not tmp.exists() and kept.exists()
    assert kv.clear() == 1 and not kept.exists() and kv.ram == {}


RACER = """
import random, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from dsv4.memory import HashingEmbedder, MemoryStore
from dsv4.memory.kv_store import SnapshotStore, TierCaps
from memory.test_kv_store import ID, fake_snapshot, tokens
store = MemoryStore.open(Path({home!r}), embedder=HashingEmbedder())
kv = SnapshotStore(store, caps=TierCaps(hot_ram=0, warm_ram=0, disk={cap}), sweep_grace_s=3600)
who = int(sys.argv[1])
for i in range(40):
    seq = tokens(80, seed=i % 6)
    if (i + who) % 2:
        kv.save(fake_snapshot(seq, seed=i))
    hit, refused = kv.lookup(ID, seq, whole_only=False)
    assert hit is None or hit.snapshot.tokens[:hit.usable] == seq[:hit.usable]
    if i % 10 == 9:
        kv.sweep()
store.close()
print("ok")
"""


def test_two_processes_race_on_the_store(store: MemoryStore, dsv4_home: Path):
    size = (SnapshotStore(store).save(fake_snapshot(tokens(80))), snapshots.all_snapshots(store)[0].bytes)[1]
    script = RACER.format(tests=str(Path(__file__).parent.parent), home=str(dsv4_home), cap=5 * size)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(w)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=str(Path(__file__).parent.parent.parent)) for w in (0, 1)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    records = snapshots.all_snapshots(store)
    assert 0 < len(records) <= 5
    for record in records:  # every record's file is whole and verifies against its record
        enc = read_snapshot(dsv4_home / record.path, expect_digest=record.checksum)
        assert enc.meta.length == record.tokens == 80
    SnapshotStore(store, sweep_grace_s=0).sweep()
    on_disk = {p.relative_to(dsv4_home).as_posix() for p in (dsv4_home / "kv").rglob("*.safetensors")}
    assert on_disk == {r.path for r in snapshots.all_snapshots(store)}  # no orphan survives a sweep



def test_a_consistent_but_crafted_header_is_refused(tmp_path: Path):
    """A header whose digest matches but whose tensor descriptions lie is refused with a reason, not a traceback."""
    from dsv4.runtime.kv.codec import EncodedSnapshot
    from dsv4.runtime.kv.file import write_snapshot
    from dsv4.runtime.kv.snapshot import SnapshotRefused

    snap = fake_snapshot(tokens(20))
    for lie in ({"shape": [3, 3]}, {"encoding": "int4", "block": 0}, {"encoding": "int8", "block": 7}):
        enc = EncodedSnapshot(snap, "hot")
        enc.meta.tensors["kv"] = enc.meta.tensors["kv"].model_copy(update=lie)
        write_snapshot(tmp_path / "x.safetensors", enc)
        with pytest.raises(SnapshotRefused, match="kv"):
            read_snapshot(tmp_path / "x.safetensors").decode()
