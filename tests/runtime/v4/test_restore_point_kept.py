"""V4 restore points the caller names on every request (the end of system + tools) survive the eviction of the
oldest, so a compaction after many steps still continues from there instead of prefilling the repository again."""

from __future__ import annotations

import pytest
import torch

from dsv4.runtime.deepseek_v4.engine import MAX_RESTORE_POINTS, V4Engine
from dsv4.runtime.engine.loader import LoadedModel

from .tiny import random_model, tiny_config



@pytest.fixture(scope="module")
def engine():
    model = random_model(tiny_config(vocab=512), seed=3)
    loaded = LoadedModel(model=model, tokenizer=None, config=model.config, path=None, precision="fp32",
                         load_seconds=0.0, checkpoint_info={})
    return V4Engine(loaded, context_window=4096, threads=1)


def test_the_named_point_outlives_many_steps(engine):
    g = torch.Generator().manual_seed(0)
    system = torch.randint(0, 512, (37,), generator=g).tolist()
    prompt = list(system)
    for _ in range(MAX_RESTORE_POINTS + 4):  # every step makes a restore point at its end
        prompt += torch.randint(0, 512, (5,), generator=g).tolist()
        engine.prefill(prompt, restore_points=[len(system)])
    assert len(system) in engine.restore_points
    before = engine.stats.prefilled_tokens
    compacted = system + [7, 8, 9]  # a compaction: the system prefix, then a summary
    logits = engine.prefill(compacted, restore_points=[len(system)])
    assert engine.stats.prefilled_tokens - before == 3
    fresh = V4Engine(engine.loaded, context_window=4096, threads=1)
    # bit for bit a cold prefill split at the same point (a different split rounds differently)
    assert torch.equal(logits, fresh.prefill(compacted, restore_points=[len(system)]))


def test_without_naming_it_the_oldest_point_goes(engine):
    engine.reset()
    g = torch.Generator().manual_seed(1)
    system = torch.randint(0, 512, (37,), generator=g).tolist()
    prompt = list(system)
    engine.prefill(prompt + [1], restore_points=[len(system)])
    for _ in range(MAX_RESTORE_POINTS + 1):
        prompt += torch.randint(0, 512, (5,), generator=g).tolist()
        engine.prefill(prompt)
    assert len(system) not in engine.restore_points
