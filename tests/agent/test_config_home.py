"""The user config lives in the XDG config dir, data in the data dir; the old location is still read, with a note."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsv4.agent.config import load_config
from dsv4.agent.repo import find_repo
from dsv4.agent.trust import is_trusted, trust_file, trust_repo
from dsv4.home import config_home, dsv4_home
from dsv4.tools.workspace import PathEscape, Workspace

from ..conftest import run_cli


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """No DSV4_HOME: the XDG layout a user gets, inside tmp_path."""
    monkeypatch.delenv("DSV4_HOME")
    data, config = tmp_path / "xdg-data", tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return data / "dsv4-code", config / "dsv4-code"


def test_the_homes_follow_xdg_and_the_overrides(xdg, tmp_path, monkeypatch):
    data, config = xdg
    assert dsv4_home(create=False) == data and config_home() == config
    assert not config.exists()  # reading never creates the config dir
    monkeypatch.setenv("DSV4_CONFIG_HOME", str(tmp_path / "cfg"))
    assert config_home() == tmp_path / "cfg"
    monkeypatch.delenv("DSV4_CONFIG_HOME")
    monkeypatch.setenv("DSV4_HOME", str(tmp_path / "one"))  # one self-contained folder (CI, the tests)
    assert dsv4_home(create=False) == config_home() == tmp_path / "one"


def test_user_config_is_read_from_the_config_dir(xdg, calc_repo):
    _, config = xdg
    config.mkdir(parents=True)
    (config / "config.toml").write_text('max_steps = 9\n')
    loaded = load_config(calc_repo)
    assert loaded.settings.max_steps == 9 and loaded.user_config == config / "config.toml"
    assert loaded.notices() == []


def test_the_old_location_is_read_with_a_note_suggesting_the_move(xdg, calc_repo):
    data, config = xdg
    data.mkdir(parents=True)
    (data / "config.toml").write_text('max_steps = 11\n')
    loaded = load_config(calc_repo)
    assert loaded.settings.max_steps == 11
    assert loaded.notices() == [f"{data / 'config.toml'}: read from the old location; move it to {config / 'config.toml'}"]
    config.mkdir(parents=True)
    (config / "config.toml").write_text('max_steps = 12\n')
    loaded = load_config(calc_repo)
    assert loaded.settings.max_steps == 12  # the new file wins, and the old one is named as not read
    assert len(loaded.notices()) == 1 and "is not read" in loaded.notices()[0]


def test_the_cli_prints_the_note_once_on_stderr(xdg, calc_repo, write_script):
    data, _ = xdg
    data.mkdir(parents=True)
    (data / "config.toml").write_text('max_steps = 5\ntest_command = "git status"\n')
    proc = run_cli(["run", "--headless", "hi", "--backend", "scripted", "--script", str(write_script([{"content": "ok"}]))],
                   calc_repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("read from the old location") == 1


def test_trust_records_move_to_the_config_dir_and_the_old_one_is_still_honoured(xdg, calc_repo):
    data, config = xdg
    identity = find_repo(calc_repo).identity
    data.mkdir(parents=True)
    (data / "trusted_repos.json").write_text(
        '{"version": 1, "repos": {"%s": {"root": null, "trusted_at": "2026-01-01T00:00:00+00:00"}}}' % identity)
    assert is_trusted(identity) and not trust_file().exists()  # read from the old place
    trust_repo("another-identity")
    assert trust_file() == config / "trusted_repos.json" and trust_file().is_file()
    assert is_trusted(identity) and is_trusted("another-identity")  # the old records came along


def test_tools_cannot_write_into_the_config_dir(xdg, calc_repo, monkeypatch):
    monkeypatch.setenv("DSV4_CONFIG_HOME", str(calc_repo / "cfg"))  # a config dir inside the repository
    workspace = Workspace(calc_repo)
    with pytest.raises(PathEscape, match="state"):
        workspace.refuse_protected(workspace.resolve("cfg/trusted_repos.json"))
    workspace.refuse_protected(workspace.resolve("calc/__init__.py"))  # the rest of the repository is writable
