from __future__ import annotations

from dsv4.agent.redact import REDACTED, redact, redact_data, secret_names

ENV = {"DEEPSEEK_API_KEY": "sk-deepseek-abcdef123456", "GITHUB_TOKEN": "ghp_0123456789abcdef", "DB_PASSWORD": "hunter2hunter2",
       "TOKENIZERS_PARALLELISM": "false", "HOME": "/root", "PATH": "/usr/bin"}


def test_secret_looking_variables_are_found_by_name():
    assert sorted(secret_names(ENV)) == ["DB_PASSWORD", "DEEPSEEK_API_KEY", "GITHUB_TOKEN", "TOKENIZERS_PARALLELISM"]


def test_values_of_secret_variables_are_redacted_wherever_they_appear():
    text = "key=sk-deepseek-abcdef123456 then ghp_0123456789abcdef, pw hunter2hunter2, home /root, false"
    out = redact(text, env=ENV)
    assert "sk-deepseek" not in out and "ghp_" not in out and "hunter2" not in out
    assert out.count(REDACTED) == 3 and "/root" in out and out.endswith("false")  # short values are not secrets


def test_an_explicit_key_is_redacted_whatever_its_length_and_the_longest_first():
    assert redact("abc and abcdef", ["abc", "abcdef"], env={}) == f"{REDACTED} and {REDACTED}"


def test_authorization_headers_bearer_tokens_and_url_credentials():
    env: dict[str, str] = {}
    assert redact("Authorization: Bearer sk-live-998877", env=env) == f"Authorization: Bearer {REDACTED}"
    assert redact('{"authorization": "Basic dXNlcjpwYXNz"}', env=env) == f'{{"authorization": "Basic {REDACTED}"}}'
    assert redact("x-api-key=zzzzzzzz1", env=env) == f"x-api-key={REDACTED}"
    assert redact("sent bearer abcdefghijkl to", env=env) == f"sent bearer {REDACTED} to"
    assert redact("https://bob:s3cret@example.com/v1", env=env) == f"https://{REDACTED}@example.com/v1"
    assert redact("nothing to hide here", env=env) == "nothing to hide here"


def test_redact_data_walks_json_shapes():
    data = {"a": ["ghp_0123456789abcdef", {"b": "Bearer ghp_0123456789abcdef"}], "n": 3, "ok": True}
    assert redact_data(data, env=ENV) == {"a": [REDACTED, {"b": f"Bearer {REDACTED}"}], "n": 3, "ok": True}
