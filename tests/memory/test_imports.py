from __future__ import annotations

import subprocess
import sys

HEAVY = ("lancedb", "lance", "pyarrow", "torch", "tokenizers", "safetensors", "transformers")


def test_importing_memory_and_its_cli_loads_no_heavy_module() -> None:
    code = ("import sys, dsv4.memory, dsv4.agent.cli.memory, dsv4.tools.memory_tools\n"
            "from dsv4.memory import MemoryStore, capture_preferences\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
