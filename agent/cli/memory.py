"""`dsv4-code memory ...`: the Engram store from the command line, a thin adapter over the memory API as
the agent opens it (agent/engram.py: a forget also redacts the session log, exactly as in a session).

Every `--json` output is one JSON document on stdout; errors are one line on stderr and exit status 2
(agent/cli/errors.py). Importing this module is cheap: the store (and LanceDB, numpy, the model) load
only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .errors import fail

if TYPE_CHECKING:
    from ...memory.store import MemoryStore
    from ..repo import Repo

SCOPES = ("user", "repo", "session")


def add_memory_parser(subparsers: Any) -> argparse.ArgumentParser:
    memory = subparsers.add_parser("memory", help="Engram memory: remember, list, show, forget, pin, export, context")
    sub = memory.add_subparsers(dest="memory_command", metavar="ACTION", required=True)

    def add(name: str, help_text: str, json_flag: bool = True, session: bool = False) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text)
        if json_flag:
            parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
        if session:
            parser.add_argument("--session", metavar="ID", help="the session whose session-scope memories count "
                                "(remember --scope session: default the latest session of this repository)")
        return parser

    remember = add("remember", "remember a fact, preference or decision", session=True)
    remember.add_argument("text")
    remember.add_argument("--key", help="a topic key; a new value for the key replaces the old one")
    remember.add_argument("--scope", choices=SCOPES, default="repo")
    remember.add_argument("--kind", choices=("fact", "preference", "decision", "note"), default=None,
                          help="default: preference for a standing instruction (from now on / always / never), else fact")
    remember.add_argument("--pin", action="store_true", help="always keep it in the model's context")
    listing = add("list", "list current memories (this repository, user scope)", session=True)
    listing.add_argument("--scope", choices=SCOPES)
    listing.add_argument("--all", action="store_true", help="include superseded values")
    show = add("show", "show one memory and the history of its key", session=True)
    show.add_argument("id")
    forget = add("forget", "forget a memory completely (by id, or every value of a key)", session=True)
    forget.add_argument("id", nargs="?")
    forget.add_argument("--key")
    forget.add_argument("--scope", choices=SCOPES, help="with --key: the scope to forget it in")
    for name, verb in (("pin", "always keep a memory in context"), ("unpin", "stop pinning a memory")):
        add(name, verb, session=True).add_argument("id")
    add("export", "everything in the store as JSON (all scopes, superseded values, tombstones)")
    context = add("context", "the memory block exactly as the model sees it now", session=True)
    context.add_argument("--budget", type=int, metavar="TOKENS", help="memory budget in tokens")
    history = add("history", "every value a key has had here", session=True)
    history.add_argument("key")
    recall = add("recall", "search current memories (full-text and vector)", session=True)
    recall.add_argument("query")
    recall.add_argument("-k", type=int, default=8, help="how many results")
    return memory


def _emit(args: argparse.Namespace, document: Any, text: str) -> int:
    print(json.dumps(document, indent=2, ensure_ascii=False) if getattr(args, "json", False) else text)
    return 0


def _session(args: argparse.Namespace, repo: Repo | None, needed: bool) -> str | None:
    """--session, else (when a session-scope write needs one) the latest session of this repository."""
    if getattr(args, "session", None) or not needed or repo is None:
        return getattr(args, "session", None)
    from ..sessions import SessionStore

    latest = SessionStore.open_default().latest(repo.identity) if SessionStore.default_exists() else None
    return latest.id if latest else None


def run_memory_command(args: argparse.Namespace, repo: Repo | None, store: MemoryStore | None = None) -> int:
    """EngramError propagates to agent/cli/errors.py (exit 2, its message on one line)."""
    if store is None:
        from ..engram import open_memory

        store = open_memory()
    return _dispatch(args, repo, store)


def _dispatch(args: argparse.Namespace, repo: Repo | None, store: MemoryStore) -> int:
    command = args.memory_command
    repo_id = repo.identity if repo else None
    session = _session(args, repo, command == "remember" and args.scope == "session")
    if command == "remember":
        from ...memory.capture import infer_kind

        done = store.remember(args.text, key=args.key, scope=args.scope, kind=args.kind or infer_kind(args.text), pin=args.pin,
                              repo_id=repo_id, session_id=session, actor="cli")
        item = done.item
        text = f"remembered {item.id} ({item.scope}{', key ' + item.key if item.key else ''})"
        if done.superseded:
            text += f"; it replaces {done.superseded.id}"
        if done.unchanged:
            text = f"already remembered as {item.id}"
        return _emit(args, {"item": item.to_json(), "superseded": done.superseded.to_json() if done.superseded else None,
                            "unchanged": done.unchanged}, text)
    if command == "list":
        items = store.list(repo_id, session, scope=args.scope, include_superseded=args.all)
        lines = [i.label() + ("" if i.status == "active" else f"  [superseded by {i.superseded_by}]") for i in items]
        return _emit(args, [i.to_json() for i in items], "\n".join(lines) or "no memories")
    if command == "show":
        item = store.get(args.id)
        history = store.history(item.key, repo_id, session, scope=item.scope) if item.key else [item]
        lines = [f"{k}: {v}" for k, v in item.to_json().items() if v not in (None, "")]
        if item.key and len(history) > 1:
            lines.append("history of the key:")
            lines += [f"  {h.created_at[:19].replace('T', ' ')}  {h.id}  {h.status:<10} {h.text}" for h in history]
        return _emit(args, {"item": item.to_json(), "history": [h.to_json() for h in history]}, "\n".join(lines))
    if command == "forget":
        if (args.id is None) == (args.key is None):
            return fail("memory forget takes an ID or --key KEY (one of them)")
        done = store.forget(args.id, key=args.key, scope=args.scope, repo_id=repo_id, session_id=session,
                            reason="forgotten by the user (command line)")
        return _emit(args, done.__dict__, done.reply())
    if command in ("pin", "unpin"):
        item = store.pin(args.id, repo_id, session) if command == "pin" else store.unpin(args.id)
        return _emit(args, item.to_json(), f"{command}ned {item.id}")
    if command == "export":
        document = store.export()  # a JSON document with or without --json
        return _emit(args, document, json.dumps(document, indent=2, ensure_ascii=False))
    if command == "context":
        block = store.current_view(repo_id, session, budget_tokens=args.budget)
        if args.json:
            return _emit(args, block.to_json(), "")
        sys.stdout.write(block.text)
        return 0
    if command == "history":
        items = store.history(args.key, repo_id, session)
        lines = [f"{h.created_at[:19].replace('T', ' ')}  {h.id}  {h.scope:<7} {h.status:<10} {h.text}" for h in items]
        return _emit(args, [h.to_json() for h in items], "\n".join(lines) or f"no memory with key {args.key!r}")
    assert command == "recall"
    result = store.recall(args.query, repo_id=repo_id, session_id=session, k=args.k)
    lines = [h.item.label() for h in result.hits] or ["no memories match"]
    if result.note:
        print(f"note: {result.note}", file=sys.stderr)
    return _emit(args, {"hits": [{"item": h.item.to_json(), "score": h.score, "sources": h.sources} for h in result.hits],
                        "note": result.note}, "\n".join(lines))
