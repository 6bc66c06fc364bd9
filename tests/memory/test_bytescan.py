from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from dsv4.memory.bytescan import base64_forms, forms, scan

SECRET = "Zq7 Ultraviolet-Hint café"


def _names(traces: list) -> set[tuple[str, str]]:
    return {(t.path.name, t.form) for t in traces}


def test_each_form_is_found_and_named(tmp_path: Path) -> None:
    (tmp_path / "raw.txt").write_bytes(b"..." + SECRET.encode() + b"...")
    (tmp_path / "lower.txt").write_bytes(SECRET.lower().encode())
    (tmp_path / "json.log").write_text(json.dumps({"m": f"x {SECRET}"}))  # ensure_ascii: caf\u00e9
    (tmp_path / "u16le.bin").write_bytes(b"\xff\xfe" + SECRET.encode("utf-16-le"))
    (tmp_path / "u16be.bin").write_bytes(SECRET.encode("utf-16-be"))
    nested = tmp_path / "deep" / "_versions"
    nested.mkdir(parents=True)
    (nested / "1.manifest").write_bytes(b"\x00" + SECRET.encode())
    found = _names(scan(tmp_path, SECRET))
    assert found == {("raw.txt", "raw"), ("lower.txt", "lower"), ("json.log", "json ascii"),
                     ("u16le.bin", "utf-16-le"), ("u16be.bin", "utf-16-be"), ("1.manifest", "raw")}


@pytest.mark.parametrize("before", [b"", b"a", b"ab", b"abc", b"abcd"])
def test_base64_is_found_at_every_alignment_inside_a_longer_blob(tmp_path: Path, before: bytes) -> None:
    blob = base64.b64encode(before + b"prefix " + SECRET.encode() + b" suffix")
    (tmp_path / "blob.json").write_bytes(b'{"data": "' + blob + b'"}')
    assert any(t.form.startswith("base64 +") for t in scan(tmp_path, SECRET))
    url = base64.urlsafe_b64encode(before + "ÿÿ ".encode() + SECRET.encode() + "ÿ".encode())
    (tmp_path / "blob.json").write_bytes(url)
    assert any(t.form.startswith(("base64 +", "base64url +")) for t in scan(tmp_path, SECRET))


def test_base64_forms_depend_on_the_text_only() -> None:
    for shift, needle in enumerate(f for name, f in base64_forms(SECRET.encode()).items() if name.startswith("base64 ")):
        for pad in (b"\x00", b"\xff", b"Q"):
            assert needle in base64.b64encode(pad * shift + SECRET.encode() + pad * 3)


def test_nothing_found_in_unrelated_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Zq7 Ultraviolet, but not the hint")
    (tmp_path / "b.bin").write_bytes(bytes(range(256)) * 4)
    assert scan(tmp_path, SECRET) == []


def test_short_forms_are_left_out() -> None:
    assert forms("a") == {} and "raw" not in forms("abc") and "utf-16-le" in forms("abc")
    assert set(forms("abcd")) >= {"raw", "utf-16-le", "utf-16-be"} and "lower" not in forms("abcd")  # duplicate


def test_real_sqlite_database_wal_and_utf16_database(tmp_path: Path) -> None:
    wal = sqlite3.connect(tmp_path / "wal.db")
    wal.execute("PRAGMA journal_mode=WAL")
    wal.execute("PRAGMA wal_autocheckpoint=0")
    wal.execute("CREATE TABLE t (v TEXT)")
    wal.execute("INSERT INTO t VALUES (?)", [f"note: {SECRET}"])
    wal.commit()
    u16 = sqlite3.connect(tmp_path / "u16.db")
    u16.execute("PRAGMA encoding='UTF-16le'")
    u16.execute("CREATE TABLE t (v TEXT)")
    u16.execute("INSERT INTO t VALUES (?)", [SECRET])
    u16.commit()
    u16.close()
    found = _names(scan(tmp_path, SECRET))
    wal.close()
    assert ("wal.db-wal", "raw") in found  # not yet checkpointed into the database file
    assert ("u16.db", "utf-16-le") in found


def test_real_lancedb_directory(tmp_path: Path) -> None:
    import lancedb

    db = lancedb.connect(tmp_path / "lance")
    db.create_table("items", data=[{"id": "m-1", "text": SECRET, "vector": [0.1, 0.2]}])
    traces = scan(tmp_path, [SECRET, "not there at all"])
    assert traces and all(t.text == SECRET for t in traces)
    assert any(t.path.suffix == ".lance" for t in traces)
    assert "in" in str(traces[0]) and str(traces[0].path) in str(traces[0])
