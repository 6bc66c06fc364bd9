"""A DSV4_HOME that cannot be a folder is one line naming it and exit 2 for every command that uses it, including
the ones that open their stores without loading the configuration (memory, kv). Real CLI subprocesses."""

from __future__ import annotations

import pytest

from ...conftest import run_cli

COMMANDS = [["memory", "list"], ["memory", "remember", "x"], ["kv", "list"], ["kv", "stats"], ["sessions"], ["undo"],
            ["context"], ["run", "--headless", "x", "--backend", "scripted", "--script", "none.json"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_dsv4_home_under_a_regular_file_is_a_configuration_error(command, calc_repo, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_cli(command, calc_repo, env={"DSV4_HOME": str(blocker / "home")})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "DSV4_HOME" in lines[0] and "a-file/home" in lines[0] and "Traceback" not in proc.stderr
