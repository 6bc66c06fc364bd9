"""Settings, layered: defaults < user config < <repo>/.dsv4/config.toml < DSV4_* env < flags.

The user config is `config.toml` in the config dir (`dsv4.home.config_home`: `$XDG_CONFIG_HOME/dsv4-code`);
one left at the old location (the data dir) is still read, with a note suggesting the move.

The repository's own file is untrusted input until the user trusts the repository (`agent/trust.py`):
untrusted, only `HARMLESS_REPO_KEYS` apply from it and the rest are returned as `ignored_repo_keys`.
Every problem in any layer (TOML syntax with line and column, an unknown key, a wrong type, an
unusable `DSV4_HOME`) is collected into one `ConfigError`, not just the first.
"""

from __future__ import annotations

import difflib
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from ..home import config_home, dsv4_home, legacy_config_dir
from .config_error import ConfigError
from .mcp.config import ServerEntry, parse_servers, project_file, project_server_names, read_project_servers

PermissionMode = Literal["ask", "auto-edit", "full-auto"]
BackendName = Literal["auto", "openai", "inprocess", "scripted"]

DEEPSEEK_BASE_URL = "https://api.deepseek.com"
DEEPSEEK_DEFAULT_MODEL = "deepseek-chat"
LOCAL_DEFAULT_MODEL = "smollm2-135m"

# What an untrusted repository may set: style and size knobs that cannot send data anywhere, run anything,
# widen permissions or choose the model. Everything else (test_command, permission_mode, base_url,
# api_key_env, backend, model, script, extra_body, context_window, timeouts...) needs trust.
HARMLESS_REPO_KEYS = frozenset({"syntax_gate", "temperature", "max_output_tokens", "max_steps"})


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
    context_window: int | None = Field(default=None, gt=0, description="Tokens of context; overrides the backend's figure")
    extra_body: dict[str, Any] | None = Field(default=None, description="Merged into each chat-completions request body")
    compact_at: float = Field(default=0.8, gt=0, le=1, description="Compact the conversation once the context is this full")
    temperature: float | None = None
    max_output_tokens: int | None = None
    request_timeout_s: float = 600.0
    max_retries: int = 4
    permission_mode: PermissionMode = "ask"
    test_command: str | None = None
    syntax_gate: Literal["warn", "refuse", "off"] = "warn"  # an edit that breaks a file's syntax: flag it, refuse it, or allow it
    max_steps: int = 50
    # Engram KV (in-process backends): prompt-prefix snapshots under $DSV4_HOME/kv/, byte budgets per tier in MiB
    kv_snapshots: bool = Field(default=True, description="Save and restore prompt-prefix KV snapshots (in-process)")
    kv_hot_ram_mb: int = Field(default=512, ge=0, description="Snapshots kept in RAM at the working dtype")
    kv_warm_ram_mb: int = Field(default=512, ge=0, description="Older snapshots kept in RAM as int8 blocks")
    kv_disk_mb: int = Field(default=8192, ge=0, description="Snapshot files on disk, least recently used evicted")
    kv_disk_tier: Literal["hot", "cold"] = Field(default="hot", description="Files lossless (hot) or int4 compressed (cold)")
    threads: int | None = Field(default=None, ge=1, description="In-process: CPU threads the model computes with "
                                "(default: OMP_NUM_THREADS, else the CPUs this process may use)")
    kv_live_hot_mb: int | None = Field(default=None, ge=0, description="In-process: KV kept hot in a live session "
                                       "(V4: compressed rows; llama: K/V positions); older ones go int8 (None: all hot)")
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES),
                                          description="[prices.MODEL] input/cached_input/output, $ per 1M tokens")
    mcp_servers: dict[str, Any] = Field(default_factory=dict, description="[mcp_servers.NAME]: MCP servers, as in .mcp.json")
    mcp_tool_timeout_s: float = Field(default=60.0, gt=0, description="Seconds an MCP tool call may take")
    mcp_startup_timeout_s: float = Field(default=30.0, gt=0, description="Seconds an MCP server may take to start")

    @field_validator("mcp_servers")
    @classmethod
    def _valid_mcp_servers(cls, table: dict[str, Any]) -> dict[str, ServerEntry]:
        problems: list[str] = []
        servers = parse_servers(table, "mcp_servers", problems)
        if problems:
            raise ValueError("; ".join(problems))
        return servers

    @field_validator("prices")
    @classmethod
    def _with_default_prices(cls, prices: dict[str, ModelPrice]) -> dict[str, ModelPrice]:
        return {**DEFAULT_PRICES, **prices}  # a config's [prices.X] adds to the built-in table


# The same fields as a plain model, to validate one file at a time (so each problem names its file).
_FileConfig: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "FileConfig", __config__=ConfigDict(extra="forbid"),
    **{name: (info.annotation, info) for name, info in Settings.model_fields.items()})


@dataclass
class LoadedSettings:
    settings: Settings
    ignored_repo_keys: list[str] = field(default_factory=list)  # set in an untrusted repo's config, not applied
    repo_config: Path | None = None
    repo_trusted: bool = False
    project_mcp_servers: list[str] = field(default_factory=list)  # applied from a trusted repository's .mcp.json
    ignored_mcp_servers: list[str] = field(default_factory=list)  # declared in an untrusted repository's .mcp.json
    mcp_file: Path | None = None
    user_config: Path | None = None  # the user config file that was read
    legacy_notice: str | None = None  # a user config at the old location

    def notices(self) -> list[str]:
        """The lines to show the user about how the config was read."""
        return [line for notice in (self.legacy_notice, self.ignored_notice()) if notice for line in notice.splitlines()]

    def ignored_notice(self) -> str | None:
        """The line (a line per file) to show the user when repository keys or MCP servers were refused."""
        how = "(trust it with 'dsv4-code trust', or --trust-repo in CI)"
        lines = []
        if self.ignored_repo_keys:
            lines.append(f"{self.repo_config}: this repository is not trusted, so its settings "
                         f"{', '.join(self.ignored_repo_keys)} were ignored {how}")
        if self.ignored_mcp_servers:
            lines.append(f"{self.mcp_file}: this repository is not trusted, so its MCP servers "
                         f"{', '.join(self.ignored_mcp_servers)} were ignored {how}")
        return "\n".join(lines) or None


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text")
        return {}
    except OSError as exc:
        problems.append(f"{path}: cannot be read ({exc.strerror or exc})")
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        problems.append(f"{path}: invalid TOML: {exc}")
        return {}


def _validate_file(path: Path, data: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """The keys of `data` that are valid; every invalid one becomes a problem naming the file."""
    if isinstance(data.get("mcp_servers"), dict):  # checked entry by entry, each problem naming the server
        data = {**data, "mcp_servers": parse_servers(data["mcp_servers"], f"{path}: mcp_servers", problems)}
    try:
        _FileConfig.model_validate(data)
        return data
    except ValidationError as exc:
        bad: set[str] = set()
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else ""
            bad.add(key)
            if error["type"] == "extra_forbidden":
                close = difflib.get_close_matches(key, list(Settings.model_fields), n=1)
                problems.append(f"{path}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            else:
                where = ".".join(str(part) for part in error["loc"])
                problems.append(f"{path}: {where}: {error['msg']} (got {error['input']!r})")
        return {key: value for key, value in data.items() if key not in bad}


CONFIG_FILE = "config.toml"


def user_config_file() -> tuple[Path | None, str | None]:
    """The user config file to read (None: there is none) and a note when it is, or shadows, the old one."""
    current = config_home() / CONFIG_FILE
    legacy_dir = legacy_config_dir()
    legacy = legacy_dir / CONFIG_FILE if legacy_dir is not None else None
    if legacy is None or not legacy.exists():
        return (current if current.exists() else None), None
    if current.exists():
        return current, f"{legacy} is not read: the user config is {current} now (remove the old file)"
    return legacy, f"{legacy}: read from the old location; move it to {current}"


def _home(problems: list[str]) -> Path | None:
    try:
        home = dsv4_home()
    except OSError as exc:
        problems.append(f"DSV4_HOME {os.environ.get('DSV4_HOME', '')}: cannot be used as a directory ({exc.strerror or exc})")
        return None
    if not os.access(home, os.W_OK | os.X_OK):
        problems.append(f"DSV4_HOME {home}: is not writable")
    return home


def check_home() -> Path:
    """DSV4_HOME, usable, for the commands that open stores there without loading the config; else ConfigError."""
    problems: list[str] = []
    home = _home(problems)
    if home is None or problems:
        raise ConfigError(problems)
    return home


def _repo_trusted(repo_root: Path) -> bool:
    from .repo import NotARepository, find_repo
    from .trust import is_trusted

    try:
        return is_trusted(find_repo(repo_root).identity)
    except NotARepository:
        return False


def load_config(repo_root: Path | None, *, trusted: bool | None = None, **flags: Any) -> LoadedSettings:
    """`trusted=None` looks the repository up in the trust record; True is `--trust-repo`. Flags that are None are not given."""
    problems: list[str] = []
    home = _home(problems)
    file_values: dict[str, Any] = {}
    loaded = LoadedSettings(settings=Settings.model_construct())
    user_file, loaded.legacy_notice = user_config_file() if home is not None else (None, None)
    if user_file is not None:
        loaded.user_config = user_file
        file_values.update(_validate_file(user_file, _read_toml(user_file, problems), problems))
    if repo_root is not None and (repo_root / ".dsv4" / "config.toml").exists():
        repo_file = loaded.repo_config = repo_root / ".dsv4" / "config.toml"
        repo_values = _validate_file(repo_file, _read_toml(repo_file, problems), problems)
        loaded.repo_trusted = trusted if trusted is not None else (bool(repo_values) and _repo_trusted(repo_root))
        if not loaded.repo_trusted:
            loaded.ignored_repo_keys = sorted(set(repo_values) - HARMLESS_REPO_KEYS)
            repo_values = {key: value for key, value in repo_values.items() if key in HARMLESS_REPO_KEYS}
        file_values.update(repo_values)
    if repo_root is not None and project_file(repo_root).is_file():
        _project_mcp(loaded, project_file(repo_root), trusted, file_values, problems)
    given = {key: value for key, value in flags.items() if value is not None}

    class LayeredSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=file_values))

    try:
        loaded.settings = LayeredSettings(**given)
    except SettingsError as exc:  # an environment value pydantic-settings could not even parse (bad JSON for a dict)
        problems.append(f"environment: {exc}")
    except ValidationError as exc:
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else ""
            origin = "flag" if key in given else (f"environment variable DSV4_{key.upper()}" if key else "settings")
            problems.append(f"{origin} {key}: {error['msg']} (got {error['input']!r})")
    if problems:
        raise ConfigError(problems)
    return loaded


def _project_mcp(loaded: LoadedSettings, path: Path, trusted: bool | None, file_values: dict[str, Any],
                 problems: list[str]) -> None:
    """A trusted repository's .mcp.json servers join (and override by name) those of user config; an untrusted
    one's are only named, never parsed further or started."""
    loaded.mcp_file = path
    if not (trusted if trusted is not None else _repo_trusted(path.parent)):
        loaded.ignored_mcp_servers = project_server_names(path)
        return
    project = read_project_servers(path, problems)
    file_values["mcp_servers"] = {**file_values.get("mcp_servers", {}), **project}
    loaded.project_mcp_servers = sorted(project)


def load_settings(repo_root: Path | None, **flags: Any) -> Settings:
    """The settings alone, for call sites that do not report refused repository keys themselves: they go to stderr."""
    loaded = load_config(repo_root, **flags)
    for notice in loaded.notices():
        print(f"dsv4-code: {notice}", file=sys.stderr)
    return loaded.settings
