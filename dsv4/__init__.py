"""dsv4-code: a terminal coding agent built around DeepSeek-V4-class models."""

__version__ = "0.1.0"
