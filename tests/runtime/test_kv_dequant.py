"""The cold/warm restore path: `dequant.c` writes int4 / int8 blocks straight into a strided bf16 block with
the values of the torch reference decode, bit for bit; the cold file is <= 0.3x of bf16; a file's tensor
table is checked against the file before any view of it is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dsv4.runtime.kv.codec import EncodedSnapshot, decode_tensor
from dsv4.runtime.kv.dequant import RowLayout, dequant_kernels
from dsv4.runtime.kv.file import read_snapshot, write_snapshot
from dsv4.runtime.kv.snapshot import KVMeta, KVSnapshot, SnapshotRefused


@pytest.fixture(autouse=True)
def _two_threads():  # two: the kernel's OpenMP split of the blocks is exercised
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def snapshot(n: int, seed: int = 0) -> KVSnapshot:
    g = torch.Generator().manual_seed(seed)
    kv = torch.randn(3, 2, 2, n, 64, generator=g) * torch.linspace(0.1, 8, 64)  # K's few large channels
    kv[0, 0, 0, 5] = 0.0  # a constant block: step 0 (clamped), every code 0
    kv[1, 1, 1, 7, :3] = 1e4  # a block whose step does not fit the small values
    meta = KVMeta(architecture="llama", identity="id", dtype="bfloat16", length=n, tokens=list(range(n)), lossy=["kv"])
    return KVSnapshot(meta=meta, tensors={"kv": kv.to(torch.bfloat16), "logits": torch.randn(7, generator=g)})


def restore_into_block(snap: KVSnapshot, m: int, capacity: int) -> torch.Tensor:
    """What `import_llama` does: a NaN-filled block of `capacity` positions, the first m written."""
    block = torch.full((3, 2, 2, capacity, 64), float("nan"), dtype=torch.bfloat16)
    snap.writer("kv")(block[:, :, :, :m], (slice(None),) * 3 + (slice(0, m),))
    return block


@pytest.mark.parametrize("tier", ["warm", "cold"])
def test_kernel_writes_the_reference_values_into_a_strided_block(tmp_path: Path, tier: str):
    if dequant_kernels() is None:
        pytest.skip("no C compiler here: the torch decode is the only path (tested below)")
    snap = snapshot(101)
    enc = EncodedSnapshot(snap, tier)
    write_snapshot(tmp_path / "s.safetensors", enc)
    for source in (enc, read_snapshot(tmp_path / "s.safetensors")):  # the RAM form and the file's views
        info = source.meta.tensors["kv"]
        assert info.encoding == {"warm": "int8", "cold": "int4"}[tier] and not info.compressed
        reference = decode_tensor(info, source._parts("kv"))
        for m in (101, 64, 1):  # the whole snapshot and prefixes of it (a restore of fewer tokens)
            block = restore_into_block(source.decode(), m, capacity=128)
            assert torch.equal(block[:, :, :, :m], reference[:, :, :, :m])
            assert block[:, :, :, m:].isnan().all()  # nothing written past the prefix (the import zeroes it)
        err = (reference.float() - snap.tensors["kv"].float()).abs().reshape(-1, 64)
        x = snap.tensors["kv"].float().reshape(-1, 64)
        levels = 15 if tier == "cold" else 254
        assert (err <= (x.amax(1) - x.amin(1))[:, None] / levels * 0.51 + x.abs().amax(1)[:, None] / 128).all()


def test_layouts_the_kernel_does_not_write_are_decoded_first():
    if dequant_kernels() is None:
        pytest.skip("no C compiler here")
    enc = EncodedSnapshot(snapshot(40), "cold")
    reference = decode_tensor(enc.meta.tensors["kv"], enc._parts("kv"))
    snap = enc.decode()
    out = torch.zeros(2, 3, 2, 40, 64, dtype=torch.bfloat16).transpose(0, 1)  # rows not one regular stride
    assert RowLayout.of(out) is None
    snap.writer("kv")(out, (slice(None),) * 4)
    assert torch.equal(out, reference)


def test_cold_file_is_under_three_tenths_of_hot(tmp_path: Path):
    snap = snapshot(512)
    write_snapshot(tmp_path / "cold.safetensors", EncodedSnapshot(snap, "cold"))
    hot = snap.tensors["kv"].numel() * 2
    payload = (tmp_path / "cold.safetensors").stat().st_size - len(json.dumps(list(range(512))))  # less the token ids
    assert payload <= 0.3 * hot, payload / hot


def _rewrite_table(path: Path, change) -> None:
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    change(header)
    text = json.dumps(header, separators=(",", ":")).encode()  # offsets count from the header's end
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n :])


@pytest.mark.parametrize("lie", ["offsets past the end", "size differs from shape", "unknown dtype", "no offsets"])
def test_a_tensor_table_that_does_not_fit_the_file_is_refused(tmp_path: Path, lie: str):
    path = tmp_path / "s.safetensors"
    write_snapshot(path, EncodedSnapshot(snapshot(40), "cold"))

    def change(header: dict) -> None:
        entry = header["kv"]
        if lie == "offsets past the end":
            entry["data_offsets"] = [entry["data_offsets"][0], entry["data_offsets"][1] + 10**9]
        elif lie == "size differs from shape":
            entry["shape"] = [entry["shape"][0] * 2]
        elif lie == "unknown dtype":
            entry["dtype"] = "F8_E4M3"
        else:
            del entry["data_offsets"]

    _rewrite_table(path, change)
    with pytest.raises(SnapshotRefused, match="corrupt|truncated"):
        read_snapshot(path)


def test_a_short_read_is_refused(tmp_path: Path):
    path = tmp_path / "s.safetensors"
    write_snapshot(path, EncodedSnapshot(snapshot(40), "cold"))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(SnapshotRefused, match="truncated"):
        read_snapshot(path)


def test_tier_encodings_override_the_lossy_default(tmp_path: Path):
    """`tier_encodings` names a tensor's encoding per lossy tier (V4's windows: exact warm, int8 cold; its indexer
    keys: int8 cold); the other lossy tensors follow the tier (int8 / int4); the rest and the hot tier stay exact."""
    snap = snapshot(64)
    window, keys = snap.tensors["kv"][0].clone(), snap.tensors["kv"][1].clone()
    meta = snap.meta.model_copy(update={"lossy": ["kv", "window", "keys"],
                                        "tier_encodings": {"window": {"warm": "exact", "cold": "int8"}, "keys": {"cold": "int8"}}})
    snap = KVSnapshot(meta=meta, tensors={**snap.tensors, "window": window, "keys": keys})
    want = {"hot": ("exact", "exact", "exact"), "warm": ("int8", "exact", "int8"), "cold": ("int4", "int8", "int8")}
    for tier, encodings in want.items():
        write_snapshot(tmp_path / f"{tier}.safetensors", EncodedSnapshot(snap, tier))
        enc = read_snapshot(tmp_path / f"{tier}.safetensors")
        assert tuple(enc.meta.tensors[n].encoding for n in ("kv", "window", "keys")) == encodings
        assert enc.meta.tensors["logits"].encoding == "exact"
        decoded = enc.decode()
        assert decoded.meta.tier_encodings == meta.tier_encodings
        assert torch.equal(decoded.tensors["logits"], snap.tensors["logits"])
        for name, t in (("window", window), ("keys", keys)):
            err = (decoded.tensors[name].float() - t.float()).abs().max() / t.float().abs().max()
            if enc.meta.tensors[name].encoding == "exact":
                assert err == 0, (tier, name)
            else:  # int8: half a step of a block's absmax / 127 at most
                assert 0 < err < 0.01, (tier, name)
