"""Sample tool calls under a grammar constraint and judge each against its tool's JSON schema (jsonschema).

Shared by the SmolLM2 (Hermes) and tiny DeepSeek-V4 (DSML) tests: every shipped tool is offered alone, the
prompt ends with the format's opening tag, and the model samples at temperature 1 under the constraint.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import torch

from dsv4.runtime.engine.sampling import SamplingParams
from dsv4.runtime.tool_calls import ParsedToolCall


def shipped_tools() -> list[dict[str, Any]]:
    """Every tool schema the agent offers: tools/ (Toolbox.schemas) and the memory tools."""
    from dsv4.tools.memory_tools import MEMORY_TOOLS
    from dsv4.tools.toolbox import DEFAULT_TOOLS, Toolbox
    from dsv4.tools.workspace import Workspace

    return Toolbox(Workspace(Path(".")), DEFAULT_TOOLS + MEMORY_TOOLS).schemas()


def judge(tool: Mapping[str, Any], calls: list[ParsedToolCall]) -> str:
    """"valid" (every call the model finished is), "unfinished" (no complete call in the budget) or what is wrong
    with the first call that is not. A model may write a second call after the first: each is judged."""
    if not calls:
        return "unfinished"
    return next((verdict for verdict in (judge_call(tool, call) for call in calls) if verdict != "valid"), "valid")


def judge_call(tool: Mapping[str, Any], call: ParsedToolCall) -> str:
    fn = tool["function"]
    if call.name != fn["name"]:
        return f"name {call.name!r}"
    args = json.loads(call.arguments)
    schema = fn["parameters"]
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(args)]
    unknown = set(args) - set(schema.get("properties", {}))
    if unknown:
        errors.append(f"unknown keys {sorted(unknown)}")
    return "valid" if not errors else "invalid: " + "; ".join(errors)


def sample_tool_calls(engine, prompt: list[int], make_processor: Callable[[], Any], parse: Callable[[str], list],
                      tool: Mapping[str, Any], n: int, *, max_tokens: int, seed: int = 0,
                      bias: torch.Tensor | None = None) -> Counter:
    """`n` calls sampled at temperature 1 after `prompt`; the verdicts counted. `bias` (added to the logits before
    the constraint) only steers a random model towards closing its strings sooner: what the grammar lets through
    is judged the same."""
    verdicts: Counter = Counter()
    for i in range(n):
        processor = make_processor()
        step = processor if bias is None else (lambda logits, ids, p=processor: p(logits + bias, ids))
        params = SamplingParams(max_tokens=max_tokens, temperature=1.0, top_p=1.0, seed=seed + i)
        text = "".join(out.text for out in engine.generate(prompt, params, logits_processor=step))
        verdicts[judge(tool, [c for c in parse(text) if isinstance(c, ParsedToolCall)])] += 1
    return verdicts


def check_verdicts(results: dict[str, Counter], min_valid_share: float) -> None:
    """Print the verdicts per tool and the schema-valid share; no call may be invalid (the grammar's promise),
    and at least `min_valid_share` of them must finish in the budget (the model can still write calls under it)."""
    total: Counter = Counter()
    for name, verdicts in results.items():
        total += verdicts
        print(f"{name:12} {dict(verdicts)}")
    print(f"schema-valid share: {total['valid']}/{sum(total.values())} sampled, {total['unfinished']} unfinished in the budget")
    bad = {name: dict(v) for name, v in results.items() if set(v) - {"valid", "unfinished"}}
    assert not bad, bad
    assert total["valid"] >= min_valid_share * sum(total.values())


def walk(processor, tokenizer, text: str) -> tuple[int | None, bool]:
    """Feed `text`'s tokens through `processor` as the generation loop would: (index of the first token it
    masks out or None, whether a call is still open afterwards)."""
    ids = tokenizer.encode(text)
    zeros = torch.zeros(tokenizer.vocab_size)
    for k, token in enumerate(ids):
        if processor(zeros, ids[:k])[token] == float("-inf"):
            return k, processor.in_call
    processor(zeros, ids)
    return None, processor.in_call
