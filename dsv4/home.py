"""Where dsv4-code keeps its state: `$DSV4_HOME`, else `$XDG_DATA_HOME/dsv4-code`.

The one home-directory rule of the product. It sits in the shared `dsv4` package (which imports nothing
of ours) so that `agent/` and `tools/` both use it without `tools` importing `agent`
(docs/architecture.md, "Layers").
"""

from __future__ import annotations

import os
from pathlib import Path


def dsv4_home(*, create: bool = True) -> Path:
    """`create=False` for callers that only compare paths with it (no folder appears as a side effect)."""
    explicit = os.environ.get("DSV4_HOME")
    if explicit:
        home = Path(explicit).expanduser()
    else:
        data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        home = Path(data) / "dsv4-code"
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home
