"""Where dsv4-code keeps its state and its configuration.

Data (sessions, memory, checkpoints, caches, logs): `$DSV4_HOME`, else `$XDG_DATA_HOME/dsv4-code`.
Configuration (config.toml, trust records, the user's AGENTS.md and commands/): `$DSV4_CONFIG_HOME`, else
`$DSV4_HOME` when that is set (one self-contained folder, as CI fleets and the tests use it), else
`$XDG_CONFIG_HOME/dsv4-code` (`~/.config/dsv4-code`).

These are the home-directory rules of the product. They sit in the shared `dsv4` package (which imports
nothing of ours) so that `agent/` and `tools/` both use them without `tools` importing `agent`
(docs/architecture.md, "Layers").
"""

from __future__ import annotations

import os
from pathlib import Path

APP_DIR = "dsv4-code"


def dsv4_home(*, create: bool = True) -> Path:
    """`create=False` for callers that only compare paths with it (no folder appears as a side effect)."""
    explicit = os.environ.get("DSV4_HOME")
    if explicit:
        home = Path(explicit).expanduser()
    else:
        data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        home = Path(data) / APP_DIR
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home


def config_home(*, create: bool = False) -> Path:
    """The user's config dir. Not created by reading: only a write (a trust record) makes it."""
    explicit = os.environ.get("DSV4_CONFIG_HOME") or os.environ.get("DSV4_HOME")
    if explicit:
        home = Path(explicit).expanduser()
    else:
        config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        home = Path(config) / APP_DIR
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home


def legacy_config_dir() -> Path | None:
    """Where config.toml and trusted_repos.json lived before the XDG config dir (the data dir); None when that
    is the config dir itself."""
    data = dsv4_home(create=False)
    return None if data == config_home() else data
