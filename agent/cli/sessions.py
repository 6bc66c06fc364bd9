"""`dsv4-code sessions [--json]` and `dsv4-code schema [report|events]`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..repo import Repo


def add_sessions_parser(subparsers: Any) -> None:
    sessions = subparsers.add_parser("sessions", help="list this repository's sessions")
    sessions.add_argument("--json", action="store_true")


def add_schema_parser(subparsers: Any) -> None:
    schema = subparsers.add_parser("schema", help="JSON schema of the headless report or the stream-json events")
    schema.add_argument("which", choices=["report", "events"], nargs="?", default="report")


def run_sessions_command(repo: Repo, as_json: bool) -> int:
    from ..session import list_sessions

    sessions = list_sessions(repo)
    if as_json:
        print(json.dumps([s.__dict__ for s in sessions], indent=2))
        return 0
    if not sessions:
        print("no sessions in this repository yet")
    for s in sessions:
        print(f"{s.id}  {s.updated_at[:16].replace('T', ' ')}  {s.status:<7} {s.turns:>3} turns  {s.model}  {s.title}")
    return 0


def run_schema_command(which: str) -> int:
    from ..report import events_schema, report_schema

    print(json.dumps(report_schema() if which == "report" else events_schema(), indent=2))
    return 0
