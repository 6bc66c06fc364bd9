"""Install size and time of `scripts/setup` on a clean copy of the repository (no .venv), CPU and CUDA.

    .venv/bin/python evals/setup_bench.py [--dev] [--skip-cpu-run]

CPU: `scripts/setup` runs for real in a copy of the tracked files (DSV4_FORCE_CUDA=0); reported are its wall
time and the size of the `.venv` it made, with torch's share. The reference in the same run is a bare
`python -m venv` (with pip), which every install pays. CUDA (DSV4_FORCE_CUDA=1, the marker a driver gives):
`scripts/setup --dry-run` shows the commands; what the CUDA torch line would download is resolved with
`pip install --dry-run --report` (nothing is installed), and the sizes of the wheels it picks are summed where
pip's index is a local folder (otherwise the count of wheels only). Pip's own configuration applies (a machine
with local find-links installs torch without network, which is what this measures there).

Writes evals/results/setup_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parent.parent


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def clean_copy(folder: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    return folder


def environment(cuda: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "DSV4_FORCE_CUDA")}
    env["DSV4_FORCE_CUDA"] = cuda
    return env


def cpu_run(dev: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="dsv4-setup-") as tmp:
        copy = clean_copy(Path(tmp) / "repo")
        started = time.perf_counter()
        proc = subprocess.run(["bash", "scripts/setup", *(["--dev"] if dev else [])], cwd=copy, capture_output=True,
                              text=True, env=environment("0"), timeout=3600)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"scripts/setup failed:\n{proc.stderr[-3000:]}")
        venv = copy / ".venv"
        site = next(venv.glob("lib/python*/site-packages"))
        torch_bytes = tree_bytes(site / "torch") if (site / "torch").is_dir() else 0
        result = {"seconds": round(seconds, 1), "venv_bytes": tree_bytes(venv), "torch_bytes": torch_bytes,
                  "packages": len(list(site.glob("*.dist-info")))}
        bare = Path(tmp) / "bare"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(bare)], check=True, timeout=600)
        result["bare_venv_seconds"] = round(time.perf_counter() - started, 1)
        result["bare_venv_bytes"] = tree_bytes(bare)
        return result


def _torch_requirement() -> str:
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["runtime"]
    # as scripts/setup asks for the CUDA build: `===`, which a local `+cpu` wheel does not satisfy
    return next(r for r in runtime if r.startswith("torch")).replace(" ", "").replace("==", "===")


def cuda_dry_run() -> dict:
    with tempfile.TemporaryDirectory(prefix="dsv4-setup-cuda-") as tmp:
        copy = clean_copy(Path(tmp) / "repo")
        proc = subprocess.run(["bash", "scripts/setup", "--dry-run"], cwd=copy, capture_output=True, text=True,
                              env=environment("1"), timeout=600)
        commands = [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]
        report_file = Path(tmp) / "report.json"
        started = time.perf_counter()
        resolve = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
                                  "--disable-pip-version-check", "--report", str(report_file), _torch_requirement()],
                                 capture_output=True, text=True, timeout=1800)
        resolve_seconds = time.perf_counter() - started
        report = json.loads(report_file.read_text()) if resolve.returncode == 0 else None
    result: dict = {"commands": commands, "resolve_seconds": round(resolve_seconds, 1)}
    if report is None:
        result["error"] = (resolve.stderr.strip().splitlines() or ["pip failed"])[-1]
        return result
    wheels, known, total = [], 0, 0
    for item in report["install"]:
        url = item["download_info"]["url"]
        name = f"{item['metadata']['name']}=={item['metadata']['version']}"
        size = None
        if url.startswith("file://"):
            path = Path(unquote(urlparse(url).path))
            size = path.stat().st_size if path.is_file() else None
        wheels.append({"package": name, "bytes": size})
        if size is not None:
            known += 1
            total += size
    result.update({"wheels": len(wheels), "wheels_with_known_size": known, "download_bytes": total,
                   "largest": sorted((w for w in wheels if w["bytes"]), key=lambda w: -w["bytes"])[:8],
                   "from_index": [w["package"] for w in wheels if w["bytes"] is None]})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", action="store_true", help="scripts/setup --dev (the test dependencies too)")
    parser.add_argument("--skip-cpu-run", action="store_true", help="only the CUDA dry run")
    args = parser.parse_args()
    results: dict = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "machine": f"{platform.machine()} {os.cpu_count()} cpus", "dev": args.dev}
    out = ROOT / "evals" / "results" / "setup_bench.json"
    if not args.skip_cpu_run:
        results["cpu"] = cpu_run(args.dev)
    elif out.exists() and "cpu" in (earlier := json.loads(out.read_text())):
        results["cpu"] = earlier["cpu"] | {"when": earlier["when"]}  # the row of an earlier full run
    results["cuda"] = cuda_dry_run()
    mib = 1024 * 1024
    print(f"{'build':<22}{'time':>10}{'size':>12}  notes")
    if "cpu" in results:
        cpu = results["cpu"]
        print(f"{'CPU (full run)':<22}{cpu['seconds']:>9.1f}s{cpu['venv_bytes'] / mib:>9.0f} MiB  torch "
              f"{cpu['torch_bytes'] / mib:.0f} MiB, {cpu['packages']} packages; bare venv {cpu['bare_venv_seconds']}s, "
              f"{cpu['bare_venv_bytes'] / mib:.0f} MiB")
    cuda = results["cuda"]
    if "error" in cuda:
        print(f"{'CUDA (dry run)':<22}{'-':>10}{'-':>12}  could not resolve: {cuda['error']}")
    else:
        print(f"{'CUDA (dry run)':<22}{'-':>10}{cuda['download_bytes'] / mib:>9.0f} MiB  torch and its "
              f"{cuda['wheels'] - 1} dependencies; sizes of the {cuda['wheels_with_known_size']} in a local folder "
              f"only, the rest come from the index; resolved in {cuda['resolve_seconds']}s")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
