"""SmolLM2 sampling Hermes calls at temperature 1 under the llguidance constraint: every call it finishes is
schema-valid, for every tool schema we ship. The default suite samples each tool once; the slow test 50 times."""

from __future__ import annotations

from collections import Counter

import pytest

pytest.importorskip("torch")

from .constrained_sampling import sample_tool_calls, shipped_tools  # noqa: E402


def _sample(engine, n: int, max_tokens: int) -> dict[str, Counter]:
    from dsv4.runtime.chat import ChatFormat
    from dsv4.runtime.constrain import ToolCallConstraint
    from dsv4.runtime.tool_calls import HermesParser

    tok = engine.tokenizer

    def parse(text: str) -> list:
        parser = HermesParser()
        return parser.feed("<tool_call>\n" + text) + parser.finish()

    results = {}
    for tool in shipped_tools():
        name = tool["function"]["name"]
        prompt = ChatFormat(tok).prompt_ids([{"role": "user", "content": f"Use the {name} tool."}], [tool])
        prompt += tok.encode("<tool_call>\n")
        results[name] = sample_tool_calls(engine, prompt, lambda t=tool: ToolCallConstraint(tok, [t], inside_call=True),
                                          parse, tool, n, max_tokens=max_tokens)
    return results


def _check(results: dict[str, Counter], n: int) -> None:
    total = Counter()
    for name, verdicts in results.items():
        total += verdicts
        print(f"{name:12} {dict(verdicts)}")
    bad = {name: v for name, v in results.items() if set(v) - {"valid", "unfinished"}}
    print(f"schema-valid share: {total['valid']}/{sum(total.values())} sampled, {total['unfinished']} unfinished in the budget")
    assert not bad, bad  # the grammar never lets an invalid call through
    assert total["valid"] >= 0.8 * sum(total.values())  # and the model does finish its calls under it


def test_every_shipped_tool_yields_valid_calls(fast_engine):
    _check(_sample(fast_engine, n=1, max_tokens=128), 1)


@pytest.mark.slow
def test_every_shipped_tool_yields_valid_calls_50_times(fast_engine):
    _check(_sample(fast_engine, n=50, max_tokens=256), 50)
