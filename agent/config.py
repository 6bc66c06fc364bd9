"""Settings, layered: defaults < $DSV4_HOME/config.toml < <repo>/.dsv4/config.toml < DSV4_* env < flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from ..home import dsv4_home

PermissionMode = Literal["ask", "auto-edit", "full-auto"]
BackendName = Literal["auto", "openai", "inprocess", "scripted"]

DEEPSEEK_BASE_URL = "https://api.deepseek.com"
DEEPSEEK_DEFAULT_MODEL = "deepseek-chat"
LOCAL_DEFAULT_MODEL = "smollm2-135m"


class ModelPrice(BaseModel):
    """US dollars per million tokens; a backend whose model has no entry is shown without a cost."""

    input: float
    cached_input: float
    output: float

    def cost(self, prompt_tokens: int, cached_prompt_tokens: int, completion_tokens: int) -> float:
        fresh = max(prompt_tokens - cached_prompt_tokens, 0)
        return (fresh * self.input + cached_prompt_tokens * self.cached_input + completion_tokens * self.output) / 1e6


DEFAULT_PRICES = {"deepseek-chat": ModelPrice(input=0.27, cached_input=0.07, output=1.10),
                  "deepseek-reasoner": ModelPrice(input=0.55, cached_input=0.14, output=2.19)}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSV4_", extra="forbid")

    backend: BackendName = "auto"
    model: str | None = Field(default=None, description="Model name (endpoint) or path/name (in-process)")
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    api_key_env: str | None = Field(default=None, description="Name of the environment variable holding the API key")
    script: Path | None = Field(default=None, description="Scripted backend: JSON list of assistant turns")
    context_window: int | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    request_timeout_s: float = 600.0
    max_retries: int = 4
    permission_mode: PermissionMode = "ask"
    test_command: str | None = None
    syntax_gate: Literal["warn", "refuse", "off"] = "warn"  # an edit that breaks a file's syntax: flag it, refuse it, or allow it
    max_steps: int = 50
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES),
                                          description="[prices.MODEL] input/cached_input/output, $ per 1M tokens")

    @field_validator("prices")
    @classmethod
    def _with_default_prices(cls, prices: dict[str, ModelPrice]) -> dict[str, ModelPrice]:
        return {**DEFAULT_PRICES, **prices}  # a config's [prices.X] adds to the built-in table


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
