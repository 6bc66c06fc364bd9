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
The walk runs on numpy arrays (one bincount per hop), so django-sized graphs rank in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .tags import Definition, FileTags

DAMPING = 0.85
MAX_ITERATIONS = 100
TOLERANCE = 1e-9
MENTION_BOOST = 10.0
VENDOR_DIRS = frozenset({"vendor", "vendored", "third_party", "thirdparty", "third-party", "external", "extern",
                         "node_modules", "bower_components"})
FAMILY = {"javascript": "js", "typescript": "js", "tsx": "js", "c": "c", "cpp": "c"}


def _key(language: str, name: str) -> str:
    return f"{FAMILY.get(language, language)}:{name}"


@dataclass
class Ranking:
    file_rank: dict[str, float]  # sums to 1 over all files
    defs: list[tuple[float, str, Definition]]  # best first

    def files_by_rank(self) -> list[str]:
        return sorted(self.file_rank, key=lambda p: (-self.file_rank[p], p))


def identifier_weight(name: str, definers: int, mentioned: bool) -> float:
    weight = 1.0 / math.sqrt(definers)
    if name.startswith("__") and name.endswith("__"):
        weight *= 0.1
    elif name.startswith("_"):
        weight *= 0.2
    if len(name) < 3:
        weight *= 0.3
    if mentioned:
        weight *= MENTION_BOOST
    return weight


def rank(files: Iterable[str], tags: Mapping[str, FileTags], mentioned_files: Iterable[str] = (),
         mentioned_idents: Iterable[str] = ()) -> Ranking:
    import numpy as np

    paths = sorted(set(files) | set(tags))
    index = {p: i for i, p in enumerate(paths)}
    n = len(paths)
    if n == 0:
        return Ranking({}, [])
    idents = set(mentioned_idents)

    # Identifier table: who defines each name.
    ident_ids: dict[str, int] = {}
    def_file: list[int] = []
    def_ident: list[int] = []
    own: dict[int, set[str]] = {}
    for path, file_tags in tags.items():
        names = {_key(file_tags.language, d.name) for d in file_tags.defs}
        own[index[path]] = names
        for name in names:
            def_ident.append(ident_ids.setdefault(name, len(ident_ids)))
            def_file.append(index[path])
    n_ids = len(ident_ids)
    definers = np.bincount(np.asarray(def_ident, dtype=np.int64), minlength=n_ids).astype(np.float64)
    names_by_id = [key.split(":", 1)[1] for key in ident_ids]
    id_weight = np.array([identifier_weight(name, int(definers[i]), name in idents)
                          for i, name in enumerate(names_by_id)], dtype=np.float64)

    # Reference edges: file -> identifier, weighted by sqrt(count) times the identifier's weight.
    ref_src: list[int] = []
    ref_id: list[int] = []
    ref_count: list[int] = []
    for path, file_tags in tags.items():
        src = index[path]
        mine = own[src]
        prefix = _key(file_tags.language, "")
        for name, count in file_tags.refs.items():
            key = prefix + name
            ident = ident_ids.get(key)
            if ident is not None and key not in mine:
                ref_src.append(src)
                ref_id.append(ident)
                ref_count.append(count)
    src_arr = np.asarray(ref_src, dtype=np.int64)
    id_arr = np.asarray(ref_id, dtype=np.int64)
    weight = np.sqrt(np.asarray(ref_count, dtype=np.float64)) * id_weight[id_arr] if ref_src else np.zeros(0)
    out_weight = np.bincount(src_arr, weight, minlength=n)
    norm = weight / out_weight[src_arr] if ref_src else weight
    dangling = out_weight == 0
    def_file_arr = np.asarray(def_file, dtype=np.int64)
    def_id_arr = np.asarray(def_ident, dtype=np.int64)
    share = 1.0 / definers[def_id_arr] if def_ident else np.zeros(0)

    personal = _personalisation(np, paths, index, tags, set(mentioned_files), idents)
    r = personal.copy()
    inflow = np.zeros(n_ids)
    for _ in range(MAX_ITERATIONS):
        inflow = np.bincount(id_arr, r[src_arr] * norm, minlength=n_ids)
        walked = np.bincount(def_file_arr, inflow[def_id_arr] * share, minlength=n)
        new = DAMPING * walked + (DAMPING * r[dangling].sum() + (1.0 - DAMPING)) * personal
        delta = float(np.abs(new - r).sum())
        r = new
        if delta < TOLERANCE:
            break
    inflow = np.bincount(id_arr, r[src_arr] * norm, minlength=n_ids)
    return Ranking({p: float(r[i]) for i, p in enumerate(paths)}, _score_defs(np, paths, index, tags, r, inflow,
                                                                               ident_ids, def_file_arr, def_id_arr, idents))


def is_vendored(path: str) -> bool:
    return not VENDOR_DIRS.isdisjoint(path.split("/")[:-1])


def _personalisation(np, paths, index, tags, mentioned_files: set[str], idents: set[str]):  # type: ignore[no-untyped-def]
    n = len(paths)
    personal = np.array([0.1 if is_vendored(p) else 1.0 for p in paths])
    personal /= personal.sum()
    targets = np.zeros(n)
    for path in mentioned_files:
        if path in index:
            targets[index[path]] += 1.0
    if idents:
        for path, file_tags in tags.items():
            if any(d.name in idents for d in file_tags.defs):
                targets[index[path]] += 0.5
            # A mentioned name that is also a file's stem ("sessions" -> sessions.py) points at that file.
            stem = path.rsplit("/", 1)[-1].split(".", 1)[0]
            if stem in idents:
                targets[index[path]] += 0.5
    if targets.sum() > 0:
        personal = 0.5 * personal + 0.5 * targets / targets.sum()
    return personal


def _score_defs(np, paths, index, tags, r, inflow, ident_ids, def_file_arr, def_id_arr, idents):  # type: ignore[no-untyped-def]
    # Split what flows into a name among its definers by their file rank: ambiguous names favour
    # important files. Unreferenced definitions keep a small share of their file's rank, so they are
    # still ordered (after referenced ones of similar files) rather than dropped.
    definer_mass = np.bincount(def_id_arr, r[def_file_arr], minlength=len(ident_ids))
    scored: list[tuple[float, str, Definition]] = []
    for path, file_tags in tags.items():
        i = index[path]
        rank_i = float(r[i])
        base = 0.01 * rank_i / max(1, len(file_tags.defs))
        damp = 0.05 if is_vendored(path) else 1.0
        for d in file_tags.defs:
            ident = ident_ids[_key(file_tags.language, d.name)]
            score = float(inflow[ident]) * rank_i / float(definer_mass[ident]) + base
            if d.name in idents:  # scores sum to at most 1, so mentioned names always come first
                score += 1.0
            scored.append((score * damp, path, d))
    scored.sort(key=lambda item: (-item[0], item[1], item[2].line))
    return scored
