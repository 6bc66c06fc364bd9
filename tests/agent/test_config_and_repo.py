from __future__ import annotations

import shutil

import pytest

from dsv4.agent.config import load_settings
from dsv4.agent.config_error import ConfigError
from dsv4.agent.repo import NotARepository, find_repo
from dsv4.agent.trust import trust_repo
from dsv4.tools.repo_identity import normalise_remote

from ..conftest import git


def test_layering_defaults_home_repo_env_flags(calc_repo, dsv4_home, monkeypatch):
    dsv4_home.mkdir(parents=True, exist_ok=True)
    (dsv4_home / "config.toml").write_text('model = "home-model"\nmax_steps = 7\ntest_command = "home-tests"\npermission_mode = "auto-edit"\n')
    (calc_repo / ".dsv4").mkdir()
    (calc_repo / ".dsv4" / "config.toml").write_text('model = "repo-model"\ntest_command = "repo-tests"\n')
    trust_repo(find_repo(calc_repo).identity)
    settings = load_settings(calc_repo)
    assert (settings.model, settings.max_steps, settings.test_command) == ("repo-model", 7, "repo-tests")
    assert settings.temperature is None and settings.permission_mode == "auto-edit"
    monkeypatch.setenv("DSV4_MODEL", "env-model")
    assert load_settings(calc_repo).model == "env-model"
    assert load_settings(calc_repo, model="flag-model").model == "flag-model"
    assert load_settings(calc_repo, model=None).model == "env-model"


def test_unknown_config_key_is_an_error(calc_repo):
    (calc_repo / ".dsv4").mkdir()
    (calc_repo / ".dsv4" / "config.toml").write_text('modle = "typo"\n')
    with pytest.raises(ConfigError, match="unknown key 'modle'"):
        load_settings(calc_repo)


def test_identity_survives_move_and_reclone_but_not_a_different_repo(calc_repo, tmp_path):
    git(calc_repo, "remote", "add", "origin", "git@github.com:acme/calc.git")
    original = find_repo(calc_repo).identity
    moved = tmp_path / "elsewhere" / "calc"
    moved.parent.mkdir()
    shutil.move(str(calc_repo), moved)
    assert find_repo(moved / "calc").identity == original  # from a subfolder too
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(moved), str(clone))
    git(clone, "remote", "set-url", "origin", "https://github.com/acme/calc")
    assert find_repo(clone).identity == original
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / "f").write_text("x")
    git(other, "add", "-A")
    git(other, "commit", "-qm", "x")
    assert find_repo(other).identity != original


def test_not_a_repository(tmp_path):
    with pytest.raises(NotARepository, match="not inside a git repository"):
        find_repo(tmp_path)


def test_normalise_remote_forms():
    forms = ["git@github.com:Acme/Calc.git", "https://github.com/acme/calc", "ssh://git@github.com/acme/calc.git/"]
    assert len({normalise_remote(f) for f in forms}) == 1
