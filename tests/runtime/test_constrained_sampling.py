"""SmolLM2 sampling Hermes calls at temperature 1 under the llguidance constraint: every call it finishes is
schema-valid, for every tool schema we ship. The default suite samples each tool once; the slow test 50 times."""

from __future__ import annotations

from collections import Counter

import pytest

pytest.importorskip("torch")

from .constrained_sampling import check_verdicts, sample_tool_calls, shipped_tools  # noqa: E402


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


@pytest.mark.timeout(900)  # ~2,500 sampled tokens: well under a minute alone, minutes on a loaded machine
def test_every_shipped_tool_yields_valid_calls(fast_engine):
    check_verdicts(_sample(fast_engine, n=1, max_tokens=128), min_valid_share=0.5)


@pytest.mark.slow
def test_every_shipped_tool_yields_valid_calls_50_times(fast_engine):
    check_verdicts(_sample(fast_engine, n=50, max_tokens=256), min_valid_share=0.8)
