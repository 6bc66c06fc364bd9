"""The memory block of the model's context: a pure function of the current items.

Rules (docs/architecture.md, "Engram memory"): only active items, after scope precedence, are candidates;
pinned items are always in the block, and pinned items that do not fit the budget are an error, never a
silent cut; unpinned items fill what is left of the budget by a fixed priority. The chosen items are rendered in write order, so a new
memory appends to the block and the prefix before it stays the same (KV and prompt-cache reuse).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .types import PRECEDENCE, Item, MemoryBlock, PinnedOverBudget

HEADER = ("# Memory\n"
          "Facts, preferences and decisions remembered from earlier work. Each is the current value: it replaces "
          "anything said before about the same thing. Follow the preferences unless the user now says otherwise.\n")
PINNED_TITLE = "\nPinned:\n"
OTHER_TITLE = "\nOther memories:\n"
KIND_PRIORITY = {"preference": 0, "decision": 1, "fact": 2, "note": 3}


def estimate_tokens(text: str) -> int:
    """About four characters a token: the fallback when the caller has no tokenizer at hand."""
    return (len(text) + 3) // 4


def resolve(items: Iterable[Item]) -> tuple[list[Item], list[Item]]:
    """(effective, shadowed): for each key the item of the narrowest scope wins; unkeyed items all count."""
    winners: dict[str, Item] = {}
    effective: list[Item] = []
    shadowed: list[Item] = []
    for item in items:
        if item.status != "active":
            continue
        if item.key is None:
            effective.append(item)
            continue
        best = winners.get(item.key)
        if best is None or PRECEDENCE[item.scope] > PRECEDENCE[best.scope]:
            if best is not None:
                shadowed.append(best)
            winners[item.key] = item
        else:
            shadowed.append(item)
    effective.extend(winners.values())
    return effective, shadowed


def line(item: Item) -> str:
    key = f" ({item.key})" if item.key else ""
    return f"- [{item.id}] {item.kind}, {item.scope}{key}: {' '.join(item.text.split())}\n"


def build_block(items: Iterable[Item], budget: int, count_tokens: Callable[[str], int] = estimate_tokens,
                ranked_ids: list[str] | None = None) -> MemoryBlock:
    """The block for these visible items. `ranked_ids` (recall order for the task at hand) decides which
    unpinned items get the room first; without it, keyed preferences and decisions of narrow scopes do."""
    effective, shadowed = resolve(items)
    shadowed_ids = [i.id for i in shadowed]
    if not effective:
        return MemoryBlock(text="", item_ids=[], pinned_ids=[], tokens=0, budget=budget, shadowed=shadowed_ids)
    pinned = sorted((i for i in effective if i.pinned), key=lambda i: i.seq)
    head = HEADER + (PINNED_TITLE + "".join(line(i) for i in pinned) if pinned else "")
    used = count_tokens(head)
    if used > budget:
        raise PinnedOverBudget(used, budget, [i.id for i in pinned])
    others = [i for i in effective if not i.pinned]
    if ranked_ids is not None:
        rank = {item_id: n for n, item_id in enumerate(ranked_ids)}
        others.sort(key=lambda i: (rank.get(i.id, len(rank)), -i.seq))
    else:
        others.sort(key=lambda i: (i.key is None, KIND_PRIORITY[i.kind], -PRECEDENCE[i.scope], -i.seq))
    chosen: list[Item] = []
    for item in others:
        cost = count_tokens(line(item)) + (0 if chosen else count_tokens(OTHER_TITLE))
        if used + cost <= budget:
            chosen.append(item)
            used += cost
    while True:
        text = _render(head, sorted(chosen, key=lambda i: i.seq), len(others) - len(chosen))
        # The "N more" note must fit too; the lowest-priority chosen item makes room for it.
        if count_tokens(text) <= budget or not chosen:
            break
        chosen.pop()
    if count_tokens(text) > budget:  # not even the note fits beside the pinned items: leave it out
        text = head
    chosen.sort(key=lambda i: i.seq)
    return MemoryBlock(text=text, item_ids=[i.id for i in pinned] + [i.id for i in chosen],
                       pinned_ids=[i.id for i in pinned], tokens=count_tokens(text), budget=budget,
                       omitted=len(others) - len(chosen), shadowed=shadowed_ids)


def _render(head: str, chosen: list[Item], omitted: int) -> str:
    text = head + (OTHER_TITLE + "".join(line(i) for i in chosen) if chosen else "")
    if omitted:
        text += f"({omitted} more memories not shown; the recall tool searches them.)\n"
    return text
