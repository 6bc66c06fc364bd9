"""Fixtures the CLI tests share with the packages they front: the runtime's local model and exact engine (models),
the messy repository of the repo-map tests (context)."""

from ...runtime.conftest import exact_engine, smollm_path  # noqa: F401 - pytest fixtures
from ...tools.repo_map.conftest import messy_repo  # noqa: F401 - pytest fixture
