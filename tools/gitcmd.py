"""The one way dsv4-code runs git: with config a repository (or a model that wrote to it) cannot turn into
running a program.

A repository's `.git/config` can name programs git runs on its own: `core.fsmonitor` (on status, diff,
add, ...), hooks (`post-index-change` fires when status refreshes the index), `diff.external` and
`diff.<driver>.command`, `diff.<driver>.textconv`, a pager, a gpg program. Every invocation here overrides
them on the command line (which beats every config file), passes `--no-ext-diff --no-textconv` to the
diff family, reads no system config, never prompts, and drops inherited `GIT_*` variables (a
`GIT_DIR` or `GIT_EXTERNAL_DIFF` from the caller's shell must not redirect us) and backend secrets.

Filters are per name: `.gitattributes` (repository content) says `filter=NAME` and the config's
`filter.NAME.clean`, `.smudge` or `.process` is a command that `git add`, `git status` and `git diff` run on
the file. No attribute source can be overridden on this git (`--attr-source` needs 2.40), so before each
command the helper lists the names the config defines (every scope and include, as that command will read
them) and blanks each one; an empty driver is no driver, and `required=false` keeps git from refusing the
file; the configs of submodules, which a child git reads, are scanned for filter names too
(tools/git_filters.py). Status and diffs do not look into a submodule's work tree at all
(`--ignore-submodules=dirty`: a changed submodule commit still shows). Content is read and written as the
raw bytes of the work tree (Git LFS files too: a checkpoint restores the real file, not a pointer).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .git_filters import blanked_filters, config_environment, filter_names, submodule_filter_names
from .process import safe_environment

GIT_TIMEOUT_S = 120
# Subcommands that produce diffs: they take the options that switch external programs off.
DIFF_FAMILY = frozenset({"diff", "log", "show", "diff-tree", "diff-index", "diff-files"})
_hooks_dir: Path | None = None


def empty_hooks_dir() -> Path:
    """A folder of this process that holds no hooks, for `core.hooksPath`."""
    global _hooks_dir
    if _hooks_dir is None or not _hooks_dir.is_dir():
        _hooks_dir = Path(tempfile.mkdtemp(prefix="dsv4-no-hooks-"))
        atexit.register(shutil.rmtree, _hooks_dir, True)
    return _hooks_dir


def hardened_config() -> dict[str, str]:
    return {
        "core.fsmonitor": "false",
        "core.hooksPath": str(empty_hooks_dir()),
        "core.pager": "cat",
        "diff.external": "",  # empty: with --no-ext-diff ignored, without it git refuses rather than runs
        "log.showSignature": "false",
        "gpg.program": "false", "gpg.ssh.program": "false", "gpg.x509.program": "false",
        "core.quotePath": "false",
    }


def git_argv(args: Sequence[str], *, config: Mapping[str, str] | None = None,
             work_tree: Path | None = None) -> list[str]:
    """`git <hardened -c ...> [--work-tree=W] SUBCOMMAND [--no-ext-diff --no-textconv] ARGS...`."""
    if not args:
        raise ValueError("git_argv needs a subcommand")
    argv = ["git", "--no-pager"]
    for key, value in {**(config or {}), **hardened_config()}.items():
        argv += ["-c", f"{key}={value}"]
    if work_tree is not None:
        argv.append(f"--work-tree={work_tree}")
    subcommand, rest = args[0], list(args[1:])
    if subcommand in DIFF_FAMILY:
        rest = ["--no-ext-diff", "--no-textconv", *rest]
    if subcommand in DIFF_FAMILY or subcommand == "status":
        # A submodule's work tree is checked by a child git reading the submodule's own config, whose filters
        # no listing here covers: only the commit a submodule records is compared.
        rest = ["--ignore-submodules=dirty", *rest]
    return [*argv, subcommand, *rest]


def git_environment(secret_names: Iterable[str] = (), overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a git child without the filter overrides (see `hardened_environment`)."""
    env = {k: v for k, v in safe_environment(secret_names).items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", GIT_PAGER="cat", PAGER="cat",
               GIT_OPTIONAL_LOCKS="0", GIT_ASKPASS="", SSH_ASKPASS="")
    env.update(overrides or {})
    return env


def list_config(cwd: Path, env: Mapping[str, str], *, config: Mapping[str, str] | None = None,
                work_tree: Path | None = None, timeout_s: float = GIT_TIMEOUT_S) -> GitResult:
    """The config key names a git command with this environment reads (every scope, includes followed)."""
    return _spawn(git_argv(["config", "-z", "--name-only", "--list"], config=config, work_tree=work_tree),
                  cwd, env, None, timeout_s, "git config")


def with_filters_blanked(env: Mapping[str, str], listing: GitResult, work_tree: Path) -> dict[str, str]:
    """`env` with every filter blanked that the listed config or a submodule's config of `work_tree` defines."""
    names = filter_names(listing.stdout.decode("utf-8", "surrogateescape").split("\0"))
    return {**env, **config_environment(blanked_filters(names | submodule_filter_names(work_tree)))}


def hardened_environment(cwd: Path, secret_names: Iterable[str] = (), overrides: Mapping[str, str] | None = None,
                         *, timeout_s: float = GIT_TIMEOUT_S) -> dict[str, str]:
    """`git_environment` plus every filter the config defines blanked, for a git run by other means (the git
    tool's cancellable `run_command`). Raises GitError when git cannot read its config."""
    env = git_environment(secret_names, overrides)
    listing = list_config(cwd, env, timeout_s=timeout_s)
    if not listing.ok:
        raise GitError(f"cannot read the git configuration in {cwd}: {listing.error_text}")
    return with_filters_blanked(env, listing, cwd)


@dataclass
class GitResult:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "surrogateescape")

    @property
    def error_text(self) -> str:
        return self.stderr.decode("utf-8", "replace").strip()


class GitError(Exception):
    pass


def run_git(cwd: Path, *args: str, config: Mapping[str, str] | None = None, work_tree: Path | None = None,
            env: Mapping[str, str] | None = None, input: bytes | None = None, timeout_s: float = GIT_TIMEOUT_S,
            secret_names: Iterable[str] = (), check: bool = False) -> GitResult:
    """Run one hardened git command with every filter blanked; `check` raises GitError (with git's message)
    when it fails."""
    argv = git_argv(args, config=config, work_tree=work_tree)
    environment = git_environment(secret_names, env)
    if args[0] == "config":  # reading or writing config runs no filter
        result = _spawn(argv, cwd, environment, input, timeout_s, "git config")
    else:
        listing = list_config(cwd, environment, config=config, work_tree=work_tree, timeout_s=timeout_s)
        # A config git cannot read fails the command itself too: it is reported as that command's failure.
        blanked = with_filters_blanked(environment, listing, work_tree or cwd) if listing.ok else None
        result = _spawn(argv, cwd, blanked, input, timeout_s, f"git {args[0]}") if blanked is not None else listing
    if check and not result.ok:
        raise GitError(f"git {' '.join(args[:3])} failed: {result.error_text}")
    return result


def _spawn(argv: list[str], cwd: Path, env: Mapping[str, str], input: bytes | None, timeout_s: float,
           what: str) -> GitResult:
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), start_new_session=True,
                                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError as exc:
        raise GitError(f"cannot run git in {cwd}: {exc.strerror}") from None
    try:
        out, err = proc.communicate(input, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n{what} killed after {timeout_s:g} s".encode()
        proc.returncode = -signal.SIGKILL
    return GitResult(proc.returncode, out, err)
