"""Repo-map benchmark: our map against Aider's RepoMap on real source trees, in the same run.

    .venv/bin/python evals/repomap_bench.py [--runs 3] [--map-tokens 1024] [--packages requests flask django]

Sources are PyPI sdists (`pip download --no-binary :all: --no-deps NAME`) unpacked into a temp dir and
committed into a fresh git repo. Both maps get the same file list (our scan's readable files) and the
same token counter (3.5 UTF-8 bytes a token). Measured per repo, median of --runs:
- cold: empty tag cache, scan + parse + rank + render (ours); get_repo_map on an empty cache (Aider);
- warm: a fresh map object on the warm disk cache;
- incremental: one file gets a new function; ours = `RepoMap.update([path])` + re-render, with the
  tag update alone also reported; Aider = get_repo_map(force_refresh) after the change (mtime cache);
- whole-repo context (ours only): `build_repo_context` cold and warm with a 1M-token budget.
Aider runs in its own venv (evals/.venv-aider: aider-chat 0.86.2, tree-sitter-language-pack 0.13.0);
this file re-executes itself there with --aider-worker. Results: evals/results/repomap_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AIDER_PY = HERE / ".venv-aider" / "bin" / "python"
CHANGE = "\n\ndef bench_added_function(value):\n    return value + 1\n"
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com"}


def approx(text: str) -> int:
    size = len(text.encode("utf-8"))
    return int(-(-size // 3.5))


# -- Aider side: runs inside evals/.venv-aider, imports nothing of ours -------------------------------

def aider_worker(root: str, files_json: str, mode: str, map_tokens: int, change: str) -> None:
    from aider.repomap import RepoMap

    class Model:
        def token_count(self, text: str) -> int:
            return approx(text)

    class IO:
        def read_text(self, fname: str, silent: bool = False) -> str | None:
            try:
                return Path(fname).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None

        def tool_output(self, *args: object, **kwargs: object) -> None:
            pass

        tool_warning = tool_error = tool_output

    files = [str(Path(root) / p) for p in json.loads(Path(files_json).read_text())]
    if mode == "cold":
        shutil.rmtree(Path(root) / RepoMap.TAGS_CACHE_DIR, ignore_errors=True)
    rm = RepoMap(map_tokens=map_tokens, root=root, main_model=Model(), io=IO(), refresh="always")
    started = time.perf_counter()
    text = rm.get_repo_map([], files) or ""
    seconds = time.perf_counter() - started
    if mode == "incremental":
        target = Path(root) / change
        original = target.read_text()
        target.write_text(original + CHANGE)
        started = time.perf_counter()
        text = rm.get_repo_map([], files, force_refresh=True) or ""
        seconds = time.perf_counter() - started
        target.write_text(original)
    print(json.dumps({"seconds": seconds, "tokens": approx(text), "chars": len(text)}))


def run_aider(root: Path, files_json: Path, mode: str, map_tokens: int, change: str) -> dict[str, float]:
    proc = subprocess.run([str(AIDER_PY), __file__, "--aider-worker", str(root), str(files_json), mode,
                           str(map_tokens), change], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"aider worker failed ({mode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- our side -----------------------------------------------------------------------------------------

def ours(root: Path, cache_dir: Path, mode: str, map_tokens: int, change: str) -> dict[str, float]:
    from dsv4.tools.repo_map import RepoMap, TagCache

    if mode == "cold":
        shutil.rmtree(cache_dir, ignore_errors=True)
    started = time.perf_counter()
    rmap = RepoMap(root, TagCache(cache_dir))
    rmap.refresh()
    text = rmap.render(map_tokens, approx).text
    seconds = time.perf_counter() - started
    out = {"seconds": seconds, "tokens": approx(text), "chars": len(text)}
    if mode == "incremental":
        target = root / change
        original = target.read_text()
        target.write_text(original + CHANGE)
        started = time.perf_counter()
        changes = rmap.update([change])
        tags_s = time.perf_counter() - started
        text = rmap.render(map_tokens, approx).text
        seconds = time.perf_counter() - started
        assert changes.modified == {change}
        target.write_text(original)
        rmap.update([change])
        out = {"seconds": seconds, "tags_update_s": tags_s, "tokens": approx(text), "chars": len(text)}
    rmap.cache.close()
    return out


def whole_context(root: Path, cache_dir: Path, mode: str) -> dict[str, float]:
    from dsv4.tools.repo_map import build_repo_context

    if mode == "cold":
        shutil.rmtree(cache_dir, ignore_errors=True)
    ctx = build_repo_context(root, 1_000_000, cache_dir=cache_dir)
    return {"seconds": ctx.build_s, "tokens": ctx.tokens, "fits_whole": ctx.fits_whole,
            "files_whole": len(ctx.included_whole), "files_map_only": len(ctx.map_only)}


# -- driver --------------------------------------------------------------------------------------------

def fetch(packages: list[str], into: Path) -> dict[str, Path]:
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps", "-d",
                    str(into / "dl"), *packages], check=True)
    roots = {}
    for archive in sorted((into / "dl").glob("*.tar.gz")):
        with tarfile.open(archive) as tar:
            tar.extractall(into / "src", filter="data")  # data filter: no owners, no links out of the tree
        top = into / "src" / archive.name.removesuffix(".tar.gz")
        name = next(p for p in packages if archive.name.lower().startswith(p.lower()))
        env = {**os.environ, **GIT_ENV}
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "sdist"]):
            subprocess.run(["git", *cmd], cwd=top, check=True, env=env, capture_output=True)
        roots[name] = top
    return roots


def pick_change(root: Path, files: list[str]) -> str:
    # A mid-sized Python module in the package itself, not in tests: a typical edit target.
    candidates = [p for p in files if p.endswith(".py") and "test" not in p and (root / p).stat().st_size > 4000]
    return sorted(candidates, key=lambda p: (root / p).stat().st_size)[len(candidates) // 2]


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def bench_repo(name: str, root: Path, work: Path, runs: int, map_tokens: int, with_aider: bool) -> dict[str, object]:
    from dsv4.tools.repo_scan import scan_repo

    scan = scan_repo(root)
    files = [f.path for f in scan.files if not f.oversized]
    files_json = work / f"{name}-files.json"
    files_json.write_text(json.dumps(files))
    change = pick_change(root, files)
    cache = work / f"{name}-cache"
    result: dict[str, object] = {"files": len(files), "python_files": sum(p.endswith(".py") for p in files),
                                 "changed_file": change, "map_tokens_budget": map_tokens}
    for mode in ("cold", "warm", "incremental"):
        mine, theirs = [], []
        for _ in range(runs):  # interleaved, so load on this shared machine hits both alike
            mine.append(ours(root, cache, mode, map_tokens, change))
            if with_aider:
                theirs.append(run_aider(root, files_json, mode, map_tokens, change))
        entry: dict[str, float] = {"ours_s": median(mine, "seconds"), "ours_tokens": mine[-1]["tokens"]}
        if mode == "incremental":
            entry["ours_tags_update_s"] = median(mine, "tags_update_s")
        if theirs:
            entry.update(aider_s=median(theirs, "seconds"), aider_tokens=theirs[-1]["tokens"],
                         speedup=median(theirs, "seconds") / median(mine, "seconds"))
        result[mode] = entry
        print(f"  {name} {mode}: {entry}", flush=True)
    whole = [whole_context(root, work / f"{name}-whole", "cold")]
    whole += [whole_context(root, work / f"{name}-whole", "warm") for _ in range(runs)]
    result["whole_context"] = {"cold_s": whole[0]["seconds"], "warm_s": median(whole[1:], "seconds"),
                               "tokens": whole[-1]["tokens"], "fits_whole": whole[-1]["fits_whole"],
                               "files_whole": whole[-1]["files_whole"], "files_map_only": whole[-1]["files_map_only"]}
    print(f"  {name} whole context: {result['whole_context']}", flush=True)
    return result


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--aider-worker":
        aider_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--map-tokens", type=int, default=1024)
    parser.add_argument("--packages", nargs="+", default=["requests", "flask", "django"])
    parser.add_argument("--no-aider", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "repomap_bench.json")
    args = parser.parse_args()
    with_aider = not args.no_aider and AIDER_PY.exists()
    aider_note = None if with_aider else ("not run: --no-aider" if args.no_aider else
                                          f"not run: {AIDER_PY} missing (python3 -m venv evals/.venv-aider && "
                                          "evals/.venv-aider/bin/pip install aider-chat==0.86.2 "
                                          "tree-sitter-language-pack==0.13.0)")
    with tempfile.TemporaryDirectory(prefix="repomap-bench-") as tmp:
        work = Path(tmp)
        roots = fetch(args.packages, work)
        repos = {}
        for name in args.packages:
            print(f"{name}: {roots[name].name}", flush=True)
            repos[roots[name].name] = bench_repo(name, roots[name], work, args.runs, args.map_tokens, with_aider)
    aider_version = None
    if with_aider:
        aider_version = subprocess.run([str(AIDER_PY), "-c", "import aider; print(aider.__version__)"],
                                       capture_output=True, text=True).stdout.strip()
    doc = {"benchmark": "repomap", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(),
           "cpus": os.cpu_count(), "python": platform.python_version(), "runs": args.runs,
           "token_counter": "3.5 UTF-8 bytes a token, both maps", "aider": aider_version or aider_note,
           "repos": repos}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print_table(doc)
    return 0


def print_table(doc: dict[str, object]) -> None:
    print("\n| repo | files | cold ours / aider (x) | warm ours / aider (x) | incr ours (tags) / aider | map tokens ours / aider | whole ctx cold / warm |")
    print("|---|---|---|---|---|---|---|")
    for name, r in doc["repos"].items():  # type: ignore[union-attr]
        c, w, i, wc = r["cold"], r["warm"], r["incremental"], r["whole_context"]
        def pair(e: dict, key: str = "s") -> str:
            if "aider_s" not in e:
                return f"{e['ours_s']:.3f} s / -"
            return f"{e['ours_s']:.3f} s / {e['aider_s']:.3f} s ({e['speedup']:.1f}x)"
        print(f"| {name} | {r['files']} | {pair(c)} | {pair(w)} | {i['ours_s'] * 1000:.0f} ms "
              f"({i['ours_tags_update_s'] * 1000:.0f} ms) / {i.get('aider_s', float('nan')) * 1000:.0f} ms | "
              f"{c['ours_tokens']} / {c.get('aider_tokens', '-')} | {wc['cold_s']:.2f} s / {wc['warm_s']:.2f} s "
              f"({wc['tokens']:,} tok, {'all whole' if wc['fits_whole'] else str(wc['files_whole']) + ' whole'}) |")


if __name__ == "__main__":
    raise SystemExit(main())
