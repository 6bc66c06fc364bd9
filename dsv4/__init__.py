"""dsv4-code: a terminal coding agent built around DeepSeek-V4-class models."""

# The one version string: pyproject.toml reads it from here (setuptools dynamic version), so the installed
# package metadata and `dsv4-code --version` agree.
__version__ = "0.1.0"
