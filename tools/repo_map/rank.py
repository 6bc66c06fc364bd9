"""Which files and definitions matter most: a personalised random walk over a files-and-identifiers graph.

A file that references identifier x sends weight to x; x passes what it receives on to the files that
define it. Iterating that walk with teleportation (PageRank by power iteration) gives each file a rank;
a definition's score is what flows into its identifier, split among the defining files by their rank.

Choices, with reasons:
- Names link only within a language family (Python to Python, C to C++, JS to TS): a Python `.append`
  says nothing about a vendored jQuery `append`.
- A file's references to names it defines itself are dropped: a local name resolves locally first, and
  self-links would let big files vote for themselves.
- Names defined in many files are ambiguous, so their weight falls with 1/sqrt(definers); dunder names,
  `_private` names and very short names say little about which file is meant and are damped further.
- Mentions from the conversation personalise the walk: half the teleport mass goes to mentioned files
  and to files defining mentioned identifiers; mentioned identifiers weigh 10x as links, and their
  definitions come first in the map.
- Vendored code (under vendor/, third_party/ and the like) is someone else's library: it teleports a
  tenth as often and its definitions score a twentieth, so it does not crowd out the project's own.
The walk runs on numpy arrays (one bincount per hop). A GraphIndex keeps each file's identifiers as
arrays between rankings, so after an edit only the changed file is re-encoded (django: tens of ms).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

from .tags import Definition, FileTags

DAMPING = 0.85
MAX_ITERATIONS = 100
TOLERANCE = 1e-10  # tight, so a warm start and a cold one land on the same order
MENTION_BOOST = 10.0
VENDOR_DIRS = frozenset({"vendor", "vendored", "third_party", "thirdparty", "third-party", "external", "extern",
                         "node_modules", "bower_components"})
FAMILY = {"javascript": "js", "typescript": "js", "tsx": "js", "c": "c", "cpp": "c"}


def _family(language: str) -> str:
    return FAMILY.get(language, language)


def is_vendored(path: str) -> bool:
    return not VENDOR_DIRS.isdisjoint(path.split("/")[:-1])


def static_weight(name: str) -> float:
    """The part of an identifier's weight that depends on the name alone."""
    weight = 1.0
    if name.startswith("__") and name.endswith("__"):
        weight *= 0.1
    elif name.startswith("_"):
        weight *= 0.2
    if len(name) < 3:
        weight *= 0.3
    return weight


@dataclass
class FileArrays:
    tags: FileTags
    def_ids: Any  # unique identifier ids this file defines
    seq_ids: Any  # identifier id of each Definition, in tags.defs order
    lines: Any  # line of each Definition
    ref_ids: Any  # identifier ids referenced (own definitions excluded)
    ref_counts: Any


class GraphIndex:
    """Identifier ids ("family:name") and per-file arrays, reused across rankings until a file changes."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.weights: list[float] = []
        self._files: dict[str, FileArrays] = {}
        # The last solution: after a small edit the walk starts from it and converges in a few steps.
        self.last: tuple[tuple[str, ...], Any, Any] | None = None

    def _id(self, key: str, name: str) -> int:
        ident = self.ids.get(key)
        if ident is None:
            ident = self.ids[key] = len(self.weights)
            self.weights.append(static_weight(name))
        return ident

    def arrays(self, path: str, tags: FileTags) -> FileArrays:
        import numpy as np

        cached = self._files.get(path)
        if cached is not None and cached.tags is tags:
            return cached
        prefix = _family(tags.language) + ":"
        seq = [self._id(prefix + d.name, d.name) for d in tags.defs]
        own = set(seq)
        refs = [(self._id(prefix + name, name), count) for name, count in tags.refs.items()]
        refs = [(i, c) for i, c in refs if i not in own]  # a local name resolves locally first
        arrays = FileArrays(tags, np.array(sorted(own), dtype=np.int64), np.array(seq, dtype=np.int64),
                            np.array([d.line for d in tags.defs], dtype=np.int64),
                            np.array([i for i, _ in refs], dtype=np.int64),
                            np.array([c for _, c in refs], dtype=np.float64))
        self._files[path] = arrays
        return arrays

    def forget(self, path: str) -> None:
        self._files.pop(path, None)


class RankedDefs(Sequence[tuple[float, str, Definition]]):
    """Definitions best first, as (score, path, Definition); built lazily, since only the top few
    hundred of tens of thousands are ever rendered."""

    def __init__(self, order: Any, scores: Any, seq_file: Any, flat: list[Definition], paths: list[str]) -> None:
        self._order, self._scores, self._seq_file, self._flat, self._paths = order, scores, seq_file, flat, paths

    def __len__(self) -> int:
        return len(self._order)

    def _item(self, k: int) -> tuple[float, str, Definition]:
        return float(self._scores[k]), self._paths[int(self._seq_file[k])], self._flat[k]

    @overload
    def __getitem__(self, i: int) -> tuple[float, str, Definition]: ...
    @overload
    def __getitem__(self, i: slice) -> list[tuple[float, str, Definition]]: ...

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self._item(int(k)) for k in self._order[i]]
        return self._item(int(self._order[i]))

    def __iter__(self) -> Iterator[tuple[float, str, Definition]]:
        return (self._item(int(k)) for k in self._order)

    def excluding(self, paths: set[str]) -> RankedDefs:
        import numpy as np

        if not paths:
            return self
        drop = np.array([p in paths for p in self._paths], dtype=bool)
        keep = self._order[~drop[self._seq_file[self._order]]]
        return RankedDefs(keep, self._scores, self._seq_file, self._flat, self._paths)


@dataclass
class Ranking:
    file_rank: dict[str, float]  # sums to 1 over all files
    defs: RankedDefs | list[tuple[float, str, Definition]]  # best first

    def files_by_rank(self) -> list[str]:
        return sorted(self.file_rank, key=lambda p: (-self.file_rank[p], p))


def rank(files: Iterable[str], tags: Mapping[str, FileTags], mentioned_files: Iterable[str] = (),
         mentioned_idents: Iterable[str] = (), index: GraphIndex | None = None) -> Ranking:
    import numpy as np

    index = index or GraphIndex()
    paths = sorted(set(files) | set(tags))
    n = len(paths)
    if n == 0:
        return Ranking({}, [])
    idents = set(mentioned_idents)
    tagged = [(i, index.arrays(p, tags[p])) for i, p in enumerate(paths) if p in tags]
    n_ids = len(index.weights)
    file_of = np.array([i for i, _ in tagged], dtype=np.int64)

    def cat(field: str, dtype: Any) -> Any:
        parts = [getattr(a, field) for _, a in tagged]
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

    def rep(field: str) -> Any:
        return np.repeat(file_of, [len(getattr(a, field)) for _, a in tagged]) if tagged else np.zeros(0, np.int64)

    def_id, def_file = cat("def_ids", np.int64), rep("def_ids")
    definers = np.bincount(def_id, minlength=n_ids).astype(np.float64)
    mentioned = np.zeros(n_ids, dtype=bool)
    for name in idents:
        for family in {_family(a.tags.language) for _, a in tagged}:
            ident = index.ids.get(f"{family}:{name}")
            if ident is not None:
                mentioned[ident] = True
    id_weight = np.asarray(index.weights) / np.sqrt(np.maximum(definers, 1.0)) * np.where(mentioned, MENTION_BOOST, 1.0)

    # Reference edges file -> identifier (only identifiers someone defines), weight sqrt(count) x identifier weight.
    ref_id, ref_src, ref_count = cat("ref_ids", np.int64), rep("ref_ids"), cat("ref_counts", np.float64)
    live = definers[ref_id] > 0
    ref_id, ref_src, ref_count = ref_id[live], ref_src[live], ref_count[live]
    weight = np.sqrt(ref_count) * id_weight[ref_id]
    out_weight = np.bincount(ref_src, weight, minlength=n)
    norm = weight / out_weight[ref_src] if len(ref_src) else weight
    dangling = out_weight == 0
    share = 1.0 / definers[def_id] if len(def_id) else np.zeros(0)

    personal = _personalisation(np, paths, tags, set(mentioned_files), idents)
    r = personal.copy()
    key = tuple(paths)
    if index.last is not None and index.last[0] == key and np.array_equal(index.last[1], personal):
        r = index.last[2].copy()
    for _ in range(MAX_ITERATIONS):
        inflow = np.bincount(ref_id, r[ref_src] * norm, minlength=n_ids)
        walked = np.bincount(def_file, inflow[def_id] * share, minlength=n)
        new = DAMPING * walked + (DAMPING * r[dangling].sum() + (1.0 - DAMPING)) * personal
        delta = float(np.abs(new - r).sum())
        r = new
        if delta < TOLERANCE:
            break
    inflow = np.bincount(ref_id, r[ref_src] * norm, minlength=n_ids)
    index.last = (key, personal, r)

    # Definition scores: what flows into a name, split among its definers by their file rank (ambiguous
    # names favour important files); unreferenced definitions keep a small share of their file's rank so
    # they are still ordered; mentioned names come first (scores sum to at most 1).
    seq_id, seq_file, seq_line = cat("seq_ids", np.int64), rep("seq_ids"), cat("lines", np.int64)
    definer_mass = np.bincount(def_id, r[def_file], minlength=n_ids)
    n_defs = np.bincount(seq_file, minlength=n).astype(np.float64)
    damp = np.array([0.05 if is_vendored(p) else 1.0 for p in paths])
    score = inflow[seq_id] * r[seq_file] / np.maximum(definer_mass[seq_id], 1e-300)
    score = (score + 0.01 * r[seq_file] / np.maximum(n_defs[seq_file], 1.0)) * damp[seq_file] + mentioned[seq_id]
    order = np.lexsort((seq_line, seq_file, -score))
    flat = [d for _, a in tagged for d in a.tags.defs]
    return Ranking({p: float(r[i]) for i, p in enumerate(paths)}, RankedDefs(order, score, seq_file, flat, paths))


def _personalisation(np: Any, paths: list[str], tags: Mapping[str, FileTags], mentioned_files: set[str],
                     idents: set[str]) -> Any:
    n = len(paths)
    personal = np.array([0.1 if is_vendored(p) else 1.0 for p in paths])
    personal /= personal.sum()
    targets = np.zeros(n)
    for i, path in enumerate(paths):
        if path in mentioned_files:
            targets[i] += 1.0
        if idents:
            file_tags = tags.get(path)
            if file_tags is not None and any(d.name in idents for d in file_tags.defs):
                targets[i] += 0.5
            # A mentioned name that is also a file's stem ("sessions" -> sessions.py) points at that file.
            if path.rsplit("/", 1)[-1].split(".", 1)[0] in idents:
                targets[i] += 0.5
    if targets.sum() > 0:
        personal = 0.5 * personal + 0.5 * targets / targets.sum()
    return personal
