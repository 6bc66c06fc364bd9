"""`dsv4-code`: the command-line front ends, thin adapters over `AgentSession` and the memory/runtime APIs.

`main.py` holds the parser, the dispatch and the one map from exceptions to exit codes (`errors.py`);
each command lives in its own module (docs/architecture.md, "Front ends"). Importing this package is
cheap: heavy modules load inside the command that needs them, so `dsv4-code --version` is instant.
"""

from .main import main

__all__ = ["main"]
