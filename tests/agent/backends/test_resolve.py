"""Backend choice from settings and the environment (OPENAI_* honoured like peers do, keys sent only where meant)."""

from __future__ import annotations

import pytest

from dsv4.agent.backends.base import GenerationParams
from dsv4.agent.backends.openai_compat import OpenAICompatBackend
from dsv4.agent.backends.resolve import BackendConfigError, describe, make_backend
from dsv4.agent.config import DEEPSEEK_BASE_URL, Settings
from dsv4.agent.events import Done
from dsv4.agent.messages import user

TURN = {"content": "ok"}


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def settings(**values) -> Settings:
    return Settings.model_construct(**(Settings().model_dump() | values))


def ask(backend) -> list:
    return list(backend.stream([user("hi")], [], GenerationParams()))


def test_openai_base_url_and_key_are_used_with_the_served_model(replay, monkeypatch):
    server = replay([TURN])
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-env-key-1234")
    backend = make_backend(settings())
    assert isinstance(backend, OpenAICompatBackend) and backend.model_id == "replay" and backend.base_url == server.base_url
    assert isinstance(ask(backend)[-1], Done)
    assert server.headers_seen[-1]["Authorization"] == "Bearer sk-openai-env-key-1234"
    assert "OPENAI_BASE_URL" in describe(settings())


def test_backend_openai_with_a_model_falls_back_to_openai_base_url(replay, monkeypatch):
    server = replay([TURN])
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    backend = make_backend(settings(backend="openai", model="chosen"))
    assert backend.model_id == "chosen" and backend.base_url == server.base_url


def test_deepseek_key_and_explicit_settings_come_before_openai_env(replay, monkeypatch):
    server = replay([TURN])
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-deepseek-0000")
    assert make_backend(settings()).base_url == DEEPSEEK_BASE_URL
    explicit = make_backend(settings(base_url=server.base_url, model="m"))
    assert explicit.base_url == server.base_url


def test_openai_key_is_not_sent_to_another_endpoint(replay, monkeypatch):
    server = replay([TURN])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-env-key-1234")
    ask(make_backend(settings(base_url=server.base_url, model="m")))
    assert "Authorization" not in server.headers_seen[-1]
    monkeypatch.setenv("MY_KEY", "named-key-5678")
    ask(make_backend(settings(base_url=server.base_url, model="m", api_key_env="MY_KEY")))
    assert server.headers_seen[-1]["Authorization"] == "Bearer named-key-5678"


def test_no_model_and_a_server_that_lists_none_is_a_clear_error():
    with pytest.raises(BackendConfigError, match="needs --model"):
        make_backend(settings(base_url="http://127.0.0.1:9/v1"))


def test_extra_body_and_context_window_settings_reach_the_backend(replay):
    server = replay([TURN], models_listing={"data": [{"id": "m", "max_model_len": 4096}]})
    backend = make_backend(settings(base_url=server.base_url, model="m", extra_body={"chat_template_kwargs": {"x": 1}}))
    assert backend.context_window == 4096
    ask(backend)
    assert server.requests[-1]["chat_template_kwargs"] == {"x": 1}
    assert make_backend(settings(base_url=server.base_url, model="m", context_window=1000)).context_window == 1000
