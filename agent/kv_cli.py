"""`dsv4-code kv list [--json] | stats [--json] | clear`: the Engram KV snapshot store under `$DSV4_HOME/kv/`.

Wiring (agent/cli.py): `add_kv_parser(sub)` in build_parser, then for `args.command == "kv"` return
`run_kv_command(args)`. Torch is never imported: these read the records in memory.db and the files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..memory.store import MemoryStore

EXIT_FAILURE = 1


def add_kv_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("kv", help="the KV snapshot store (resume without re-reading)",
                                   description="Show and manage the saved KV snapshots the in-process runtime "
                                               "restores prompt prefixes from (files under $DSV4_HOME/kv/).")
    sub = parser.add_subparsers(dest="kv_command", required=True)
    listing = sub.add_parser("list", help="every snapshot: tier, tokens, size, model, last use, what it covers")
    listing.add_argument("--json", action="store_true", help="one JSON document on stdout")
    stats = sub.add_parser("stats", help="snapshots, bytes and tokens per tier; files without a record")
    stats.add_argument("--json", action="store_true", help="one JSON document on stdout")
    sub.add_parser("clear", help="delete every snapshot and every file without a record")
    return parser


def run_kv_command(args: argparse.Namespace, store: MemoryStore | None = None) -> int:
    from ..memory import EngramError

    try:
        if store is None:
            from ..memory.store import MemoryStore
            from ..home import dsv4_home

            store = MemoryStore.open(dsv4_home(), embedder=None)
        return _dispatch(args, store)
    except EngramError as exc:
        print(f"dsv4-code: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _records(store: MemoryStore) -> list[dict[str, Any]]:
    from ..memory import snapshots

    return [{"id": s.id, "tier": s.tier, "tokens": s.tokens, "bytes": s.bytes, "model": s.model_key[:12],
             "path": s.path, "created_at": s.created_at, "last_used_at": s.last_used_at,
             "files": len(s.files), "memory_ids": s.memory_ids, "turns": [list(t) for t in s.turns]}
            for s in snapshots.all_snapshots(store)]


def _orphans(store: MemoryStore) -> int:
    root = store.home / "kv"
    if not root.is_dir():
        return 0
    named = {r["path"] for r in store.rows("SELECT path FROM kv_snapshots")}
    return sum(1 for p in root.rglob("*.safetensors") if p.relative_to(store.home).as_posix() not in named)


def _dispatch(args: argparse.Namespace, store: MemoryStore) -> int:
    from ..memory import kv_admin

    if args.kv_command == "list":
        records = _records(store)
        if args.json:
            print(json.dumps(records, indent=2))
            return 0
        if not records:
            print(f"no KV snapshots in {store.home / 'kv'}")
            return 0
        print(f"{'id':<20} {'tier':<5} {'tokens':>7} {'size':>10}  {'model':<12}  last used")
        for r in records:
            print(f"{r['id']:<20} {r['tier']:<5} {r['tokens']:>7} {_size(r['bytes']):>10}  {r['model']:<12}  "
                  f"{r['last_used_at'][:19]}")
        return 0
    if args.kv_command == "stats":
        doc = kv_admin.disk_stats(store)
        doc["files_without_record"] = _orphans(store)
        for tier in doc["disk"].values():
            tier["bytes_per_token"] = round(tier["bytes"] / tier["tokens"], 1) if tier["tokens"] else 0
        if args.json:
            print(json.dumps(doc, indent=2))
            return 0
        print(f"KV snapshots in {doc['dir']}")
        if not doc["disk"]:
            print("  none")
        for name, tier in sorted(doc["disk"].items()):
            lossy = "lossless" if name == "hot" else "quantised: int4 and int8 blocks"
            print(f"  {name:<5} ({lossy}): {tier['snapshots']} snapshots, {tier['tokens']} tokens, "
                  f"{_size(tier['bytes'])} ({tier['bytes_per_token']} bytes/token)")
        print(f"  files without a record: {doc['files_without_record']} (removed by `dsv4-code kv clear`)")
        return 0
    removed = kv_admin.clear(store)
    swept = kv_admin.sweep(store, grace_s=0)
    print(f"deleted {removed} KV snapshots and {swept} files without a record")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry for tests and debugging: `python -m dsv4.agent.kv_cli list|stats|clear`."""
    parser = argparse.ArgumentParser(prog="dsv4-code")
    add_kv_parser(parser.add_subparsers(dest="command", required=True))
    return run_kv_command(parser.parse_args(["kv", *(argv if argv is not None else sys.argv[1:])]))


if __name__ == "__main__":
    raise SystemExit(main())
