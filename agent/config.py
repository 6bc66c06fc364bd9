"""Settings, layered: defaults < $DSV4_HOME/config.toml < <repo>/.dsv4/config.toml < DSV4_* env < flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from ..home import dsv4_home

PermissionMode = Literal["ask", "auto-edit", "full-auto"]
BackendName = Literal["auto", "openai", "inprocess", "scripted"]

DEEPSEEK_BASE_URL = "https://api.deepseek.com"
DEEPSEEK_DEFAULT_MODEL = "deepseek-chat"
LOCAL_DEFAULT_MODEL = "smollm2-135m"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSV4_", extra="forbid")

    backend: BackendName = "auto"
    model: str | None = Field(default=None, description="Model name (endpoint) or path/name (in-process)")
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(default=None, description="Name of the environment variable holding the API key")
    script: Path | None = Field(default=None, description="Scripted backend: JSON list of assistant turns")
    context_window: int | None = Field(default=None, gt=0, description="Tokens of context; overrides the backend's figure")
    compact_at: float = Field(default=0.8, gt=0, le=1, description="Compact the conversation once the context is this full")
    temperature: float | None = None
    max_output_tokens: int | None = None
    request_timeout_s: float = 600.0
    max_retries: int = 4
    permission_mode: PermissionMode = "ask"
    test_command: str | None = None
    syntax_gate: Literal["warn", "refuse", "off"] = "warn"  # an edit that breaks a file's syntax: flag it, refuse it, or allow it
    max_steps: int = 50


def load_settings(repo_root: Path | None, **flags: Any) -> Settings:
    """Flags that are None are treated as not given, so they never mask a config value."""
    files = [dsv4_home() / "config.toml"]
    if repo_root is not None:
        files.append(repo_root / ".dsv4" / "config.toml")
    present = [path for path in files if path.is_file()]

    class LayeredSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # Later files win in TomlConfigSettingsSource's deep merge, so the repo file goes last.
            return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=present))

    return LayeredSettings(**{k: v for k, v in flags.items() if v is not None})
