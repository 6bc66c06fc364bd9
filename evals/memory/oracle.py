"""The reference model the consistency suite checks the store against: a few dicts and the rules of
docs/architecture.md ("Engram memory"), written independently of memory/ (no code shared with the store)."""

from __future__ import annotations

from dataclasses import dataclass, field

RANK = {"user": 0, "repo": 1, "session": 2}


@dataclass
class Entry:
    id: str
    value: str  # the unique token the item's text ends with
    key: str | None
    scope: str
    owner: str
    pinned: bool
    active: bool = True
    probe: bool = True  # False: may be left out of a context for lack of room


class Oracle:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.forgotten: set[str] = set()

    def write(self, item_id: str, value: str, key: str | None, scope: str, owner: str, pin: bool,
              probe_text: bool = True) -> None:
        if key is not None:
            for old in self.entries:
                if old.active and old.key == key and (old.scope, old.owner) == (scope, owner):
                    old.active = False
                    pin = pin or old.pinned
        self.entries.append(Entry(item_id, value, key, scope, owner, pin, probe=probe_text))

    def forget(self, ids: list[str]) -> None:
        self.forgotten |= {e.value for e in self.entries if e.id in ids}
        self.entries = [e for e in self.entries if e.id not in ids]

    def live_ids(self) -> list[str]:
        return [e.id for e in self.entries]

    def _visible(self, repo: str, session: str) -> list[Entry]:
        owners = {("user", ""), ("repo", repo), ("session", session)}
        return [e for e in self.entries if (e.scope, e.owner) in owners]

    def has_key(self, key: str, repo: str, session: str) -> bool:
        return any(e.key == key for e in self._visible(repo, session))

    def effective(self, repo: str, session: str) -> list[Entry]:
        best: dict[str, Entry] = {}
        out = []
        for e in self._visible(repo, session):
            if not e.active:
                continue
            if e.key is None:
                out.append(e)
            elif e.key not in best or RANK[e.scope] > RANK[best[e.key].scope]:
                best[e.key] = e
        return out + list(best.values())

    def forbidden(self, repo: str, session: str) -> tuple[set[str], set[str]]:
        """(superseded values, every other value that must not be shown here: shadowed, foreign, forgotten)."""
        current = {e.value for e in self.effective(repo, session)}
        superseded = {e.value for e in self.entries if not e.active}
        others = {e.value for e in self.entries if e.value not in current} | self.forgotten
        return superseded, others - superseded

    def pinned_texts(self, repo: str, session: str) -> list[str]:
        return [e.value for e in self.effective(repo, session) if e.pinned]

    def history(self, key: str, repo: str, session: str) -> list[str]:
        return [e.value for e in self._visible(repo, session) if e.key == key]


@dataclass
class Probe:
    name: str
    probes: int = 0
    failures: list[str] = field(default_factory=list)
    superseded_in_context: int = 0

    def ok(self) -> None:
        self.probes += 1

    def fail(self, message: str) -> None:
        self.probes += 1
        self.failures.append(message)

    def expect(self, condition: bool, message: str) -> None:
        self.ok() if condition else self.fail(message)

    def context(self, text: str, oracle: Oracle, repo: str, session: str, complete: bool = True) -> None:
        if complete:
            for e in oracle.effective(repo, session):
                if e.probe:
                    self.expect(e.value in text, f"context {repo}/{session}: current value {e.value} missing")
        superseded, others = oracle.forbidden(repo, session)
        for value in superseded:
            if value in text:
                self.superseded_in_context += 1
            self.expect(value not in text, f"context {repo}/{session}: superseded value {value} present")
        for value in others:
            self.expect(value not in text, f"context {repo}/{session}: value {value} of another scope or forgotten")

    def recall(self, texts: list[str], oracle: Oracle, repo: str, session: str, key: str) -> None:
        values = [t.split()[-1] for t in texts]
        current = {e.value for e in oracle.effective(repo, session)}
        self.expect(set(values) <= current, f"recall {key!r} returned non-current {sorted(set(values) - current)}")
        wanted = [e.value for e in oracle.effective(repo, session) if e.key == key]
        self.expect(all(v in values for v in wanted), f"recall {key!r} missed the current value {wanted}")

    def history(self, texts: list[str], oracle: Oracle, repo: str, session: str, key: str) -> None:
        got = [t.split()[-1] for t in texts]
        want = oracle.history(key, repo, session)
        self.expect(got == want, f"history {key!r}: {got} != {want}")

    def summary(self) -> dict:
        return {"probes": self.probes, "failures": self.failures, "superseded_in_context": self.superseded_in_context}
