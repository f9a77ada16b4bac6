"""Where a deployment's code comes from, and bringing it onto this machine.

- `LocalSource(path)`: a directory already here; fetching it only checks it is still there.
- `GitSource(url, branch, commit)`: a git repository. Fetching clones it once into a cache
  directory named after the URL (`<cache>/<sha256(url)[:16]>`), fetches on later calls, and
  checks out, detached, the commit if one is given, else the branch's tip on the remote
  (`origin/<branch>`), else the remote's default branch. The `git` command line does the work,
  so credentials, SSH keys and proxies are configured as for any git use on the machine.

Fetches of the same URL in several processes at once are serialised by an exclusive
`flock` on `<dir>.lock`, held for the whole fetch: a clone is never seen half made, nor a
checkout half done. The lock ends with the fetch: a later fetch of the same URL at another
commit moves the same checkout, so load the flow from it (or copy the tree) before fetching
the next one.

Both kinds round-trip through plain JSON-able dicts (`to_dict` / `source_from_dict`), the form
in which a deployment stores them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from ..errors import SourceError

GIT_URL_PREFIXES = ("https://", "http://", "ssh://", "git@", "file://")
GIT_PREFIX = "git+"  # marks a local path as a repository to clone, not a directory to use as is
_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")
_GIT_LINES_SHOWN = 5
_BRANCHES_SHOWN = 10
_REACH_HINT = (
    "Check the URL, that this machine can reach it, and its credentials (SSH key or token), "
    "e.g. by running the same git command by hand"
)


@dataclass(frozen=True, slots=True)
class LocalSource:
    """Code in a directory on this machine, used where it is."""

    path: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "local", "path": self.path}


@dataclass(frozen=True, slots=True)
class GitSource:
    """Code in a git repository: the `commit` if given (a hex sha, full or abbreviated), else
    the tip of `branch`, else the tip of the remote's default branch."""

    url: str
    branch: str | None = None
    commit: str | None = None

    def __post_init__(self) -> None:
        # A branch name given as the commit would resolve to the clone's local branch, which
        # fetching never moves: it would run old code without a word.
        if self.commit is not None and not _COMMIT.fullmatch(self.commit):
            raise ValueError(
                f"commit {self.commit!r} is not a commit sha (4 to 64 hex digits); "
                "to follow a branch's tip pass branch= instead"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "git", "url": self.url, "branch": self.branch, "commit": self.commit}


Source: TypeAlias = LocalSource | GitSource


def source_from_dict(data: dict[str, Any]) -> Source:
    """The source `to_dict` described; `ValueError` for a dict of no known kind."""
    kind = data.get("kind")
    if kind == "local":
        return LocalSource(str(data["path"]))
    if kind == "git":
        return GitSource(str(data["url"]), data.get("branch"), data.get("commit"))
    raise ValueError(f"unknown source kind {kind!r} in {data!r}; expected 'local' or 'git'")


def source_from(value: str | Path | Source) -> Source:
    """A source from what a user typed: a git URL (`https://`, `http://`, `ssh://`, `git@`,
    `file://`, or anything ending in `.git`) or `git+/path/to/repo` (a local repository to
    clone) is a `GitSource` at its default branch; an existing directory is a `LocalSource`
    (its absolute, resolved path). Anything else is a `ValueError` saying what was expected."""
    if isinstance(value, (LocalSource, GitSource)):
        return value
    text = str(value)
    if isinstance(value, str) and text.startswith(GIT_PREFIX):
        return _git_prefixed(text)
    if isinstance(value, str) and (text.startswith(GIT_URL_PREFIXES) or text.rstrip("/").endswith(".git")):
        local = Path(text)
        # A local bare repository (`repos/app.git`) is cloned by absolute path, so the
        # source means the same from any working directory.
        return GitSource(str(local.resolve()) if local.is_dir() else text)
    if Path(text).is_dir():
        return LocalSource(str(Path(text).resolve()))
    raise ValueError(
        f"source {text!r} is neither an existing directory nor a git repository URL; expected "
        "a directory, a URL starting with https://, http://, ssh://, git@ or file://, a path "
        "ending in .git, or git+/path/to/local/repository"
    )


def _git_prefixed(text: str) -> GitSource:
    rest = text[len(GIT_PREFIX):]
    if rest.startswith(GIT_URL_PREFIXES):
        return GitSource(rest)
    repository = Path(rest)
    if not (repository / ".git").is_dir():
        raise ValueError(
            f"source {text!r}: {str(repository.resolve())!r} is not a git working directory "
            "(it has no .git directory); give the path of a repository after 'git+'"
        )
    return GitSource(str(repository.resolve()))


def fetch(source: Source, cache_dir: Path) -> Path:
    """The directory holding `source`'s code, up to date: a `LocalSource`'s own path, or a
    `GitSource`'s checkout under `cache_dir`. `SourceError` says why it could not be had."""
    if isinstance(source, LocalSource):
        path = Path(source.path)
        if not path.is_dir():
            raise SourceError(
                f"local source {source.path!r} is not a directory (any more); "
                "point the deployment at the directory that holds the flow's code"
            )
        return path
    return _fetch_git(source, cache_dir)


def resolved_commit(path: Path) -> str:
    """The full sha checked out in `path`, a fetched git working directory: the commit a run
    ran, whatever branch was asked for."""
    hint = "pass the directory fetch() returned for a GitSource"
    if not path.is_dir():
        raise SourceError(f"{str(path)!r} is not a directory; {hint}")
    return _git(["rev-parse", "HEAD"], cwd=path, failure=f"{str(path)!r} has no commit checked out", hint=hint).strip()


def _fetch_git(source: GitSource, cache_dir: Path) -> Path:
    if shutil.which("git") is None:
        raise SourceError(
            f"cannot fetch {source.url!r}: the git command is not installed on this machine; "
            "install git (e.g. `apt-get install git`) or deploy from a local directory"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    checkout = cache_dir / hashlib.sha256(source.url.encode()).hexdigest()[:16]
    with _exclusive(checkout.with_name(checkout.name + ".lock")):
        if (checkout / ".git").is_dir():
            # --force: a tag moved on the remote is moved here too, not refused as a clobber.
            _git(["fetch", "--quiet", "--all", "--tags", "--force"], cwd=checkout,
                 failure=f"fetching {source.url!r} failed")
        else:
            _clone(source.url, checkout)
        sha = _target_commit(source, checkout)
        damaged = f"the cached clone may be damaged: delete {str(checkout)!r} and fetch again"
        _git(["checkout", "--quiet", "--force", "--detach", sha], cwd=checkout,
             failure=f"checking out {sha} failed", hint=damaged)
        # Files the previous checkout's runs left behind must not leak into this one.
        _git(["clean", "--quiet", "-ffdx"], cwd=checkout, failure=f"cleaning {str(checkout)!r} failed", hint=damaged)
    return checkout


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `lock_path`; the kernel drops it if the process dies."""
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _clone(url: str, checkout: Path) -> None:
    if checkout.exists():
        shutil.rmtree(checkout)  # what a clone killed midway left: no .git, or half of one
    try:
        # From the caller's directory, where a relative repository path means what it says.
        _git(["clone", "--quiet", url, str(checkout.resolve())], cwd=Path.cwd(), failure=f"cloning {url!r} failed")
    except SourceError:
        shutil.rmtree(checkout, ignore_errors=True)
        raise


def _target_commit(source: GitSource, checkout: Path) -> str:
    """The sha to check out, or `SourceError` naming what the repository lacks."""
    if source.commit is not None:
        wanted, what = source.commit, f"commit {source.commit!r}"
    elif source.branch is not None:
        wanted, what = f"origin/{source.branch}", f"branch {source.branch!r}"
    else:
        wanted, what = "origin/HEAD", "a default branch"
    found = _run_git(["rev-parse", "--verify", "--quiet", f"{wanted}^{{commit}}"], cwd=checkout)
    if found.returncode == 0:
        return found.stdout.strip()
    branches = _branches(checkout)
    shown = ", ".join(branches[:_BRANCHES_SHOWN]) + (" ..." if len(branches) > _BRANCHES_SHOWN else "")
    raise SourceError(
        f"{source.url!r} has no {what}; its branches: {shown or 'none'}. "
        "Give a branch from that list, or a commit that is on one of them (pushed)"
    )


def _branches(checkout: Path) -> list[str]:
    listed = _run_git(["for-each-ref", "--format=%(refname:lstrip=3)", "refs/remotes/origin"], cwd=checkout)
    return sorted(name for name in listed.stdout.split() if name != "HEAD")


def _git(args: list[str], *, cwd: Path, failure: str, hint: str = _REACH_HINT) -> str:
    """Run git; its stdout, or `SourceError` with `failure`, git's last lines of stderr and
    `hint`, what to do about it."""
    done = _run_git(args, cwd=cwd)
    if done.returncode != 0:
        tail = "\n  ".join(done.stderr.strip().splitlines()[-_GIT_LINES_SHOWN:])
        raise SourceError(
            f"{failure} (git {args[0]} exited {done.returncode}):\n  {tail}\n{hint}"
        )
    return done.stdout


def _run_git(args: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Never wait for a password on a terminal nobody watches: a worker would hang forever.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
