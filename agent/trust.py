"""Which repositories the user trusts, so that their own `.dsv4/config.toml` applies in full.

A repository is content from whoever wrote it (a pull request included): until the user trusts it,
its config may set only harmless keys (`config.HARMLESS_REPO_KEYS`). Trust is recorded in the
user's config dir (`<config dir>/trusted_repos.json`, `dsv4.home.config_home`; a record at the old location,
the data dir, is still read and moves on the next change) by repository identity (root commit + origin
remote, as `agent.repo.find_repo` computes it), so it survives moves and re-clones and a different
repository at the same path is not trusted. The CLI front ends are `dsv4-code trust [--revoke]`
and `--trust-repo` (CI).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from .config_error import ConfigError
from ..home import config_home, legacy_config_dir

TRUST_FILE = "trusted_repos.json"


class TrustedRepo(BaseModel):
    root: str | None = None  # where it was when trusted, for the user's eyes only; identity decides
    trusted_at: str


class TrustFile(BaseModel):
    version: int = 1
    repos: dict[str, TrustedRepo] = Field(default_factory=dict)


def trust_file() -> Path:
    return config_home() / TRUST_FILE


def _record_file() -> Path:
    """The file to read: the current one, else one at the old location."""
    current = trust_file()
    legacy_dir = legacy_config_dir()
    if current.exists() or legacy_dir is None or not (legacy_dir / TRUST_FILE).exists():
        return current
    return legacy_dir / TRUST_FILE


def _load() -> TrustFile:
    path = _record_file()
    if not path.exists():
        return TrustFile()
    try:
        return TrustFile.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise ConfigError([f"{path}: not a trust record ({exc.errors()[0]['msg']}); fix or delete it"]) from None


def _save(record: TrustFile) -> None:
    path = config_home(create=True) / TRUST_FILE
    fd, temp = tempfile.mkstemp(prefix=f".{TRUST_FILE}.", suffix=".dsv4tmp", dir=path.parent)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(record.model_dump(), indent=2) + "\n")
    os.replace(temp, path)


def is_trusted(identity: str) -> bool:
    return identity in _load().repos


def trust_repo(identity: str, root: Path | None = None) -> None:
    record = _load()
    record.repos[identity] = TrustedRepo(root=str(root) if root else None,
                                         trusted_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    _save(record)


def revoke(identity: str) -> bool:
    """False when the repository was not trusted."""
    record = _load()
    if record.repos.pop(identity, None) is None:
        return False
    _save(record)
    return True


def trusted_repos() -> dict[str, TrustedRepo]:
    return dict(_load().repos)
