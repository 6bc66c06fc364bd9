"""What the app writes outside the screen: stderr to a log file while it runs, and the prompt history."""

from __future__ import annotations

import os
import subprocess
import sys

from dsv4.tui.app import stderr_to_log
from dsv4.tui.history import PromptHistory, history_path


def test_stderr_goes_to_a_log_under_dsv4_home_and_comes_back(dsv4_home, capfd):
    with stderr_to_log() as log:
        os.write(2, b"native noise\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child noise\\n')"], check=True)
    os.write(2, b"after\n")
    assert log.parent == dsv4_home / "logs"
    assert log.read_text() == "native noise\nchild noise\n"
    assert capfd.readouterr().err == "after\n"


def test_history_survives_a_damaged_file_and_keeps_one_entry_per_repeat(dsv4_home):
    path = history_path("git:example/repo")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    history = PromptHistory(path)
    assert history.entries == []
    for text in ["one", "two", "two", " "]:
        history.add(text)
    assert PromptHistory(path).entries == ["one", "two"]
    assert history.previous() == "two" and history.previous() == "one" and history.previous() is None
    assert history.next() == "two" and history.next() == "" and history.next() is None
