"""Sources: a real git repository made here, fetched by commit, by branch and by default,
its flow loaded from the checkout and called; concurrent fetches; every error."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headwater.deploy.entrypoints import load_flow
from headwater.deploy.sources import (
    GitSource,
    LocalSource,
    fetch,
    resolved_commit,
    source_from,
    source_from_dict,
)
from headwater.errors import SourceError


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits work on a machine without any git config; flows run without a state service."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Headwater Tests")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tests@headwater.invalid")
    monkeypatch.setenv("HEADWATER_RECORD", "0")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commit_flow(repo: Path, returns: int) -> str:
    """Commit a flows.py whose flow returns `returns`; the new commit's sha."""
    (repo / "flows.py").write_text(
        textwrap.dedent(
            f"""
            from headwater import flow

            @flow
            def version() -> int:
                return {returns}
            """
        ),
        encoding="utf-8",
    )
    git(repo, "add", "flows.py")
    git(repo, "commit", "--quiet", "-m", f"returns {returns}")
    return git(repo, "rev-parse", "HEAD")


@dataclass
class Origin:
    path: Path
    first: str  # returns 1; branch "release" stays here
    second: str  # returns 2; the tip of "main", the default branch


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    first = commit_flow(repo, 1)
    git(repo, "branch", "release")
    second = commit_flow(repo, 2)
    return Origin(repo, first, second)


def run_flow_in(checkout: Path) -> Any:
    return load_flow("flows.py:version", base=checkout)()


# -- fetching git ------------------------------------------------------------------------


def test_fetches_by_commit_and_the_right_commits_code_runs(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    checkout = fetch(GitSource(str(origin.path), commit=origin.first), cache)
    assert checkout.parent == cache
    assert resolved_commit(checkout) == origin.first
    assert run_flow_in(checkout) == 1

    short = origin.second[:10]  # an abbreviated sha is enough
    assert fetch(GitSource(str(origin.path), commit=short), cache) == checkout
    assert resolved_commit(checkout) == origin.second
    assert run_flow_in(checkout) == 2


def test_fetches_a_branchs_tip_and_the_default_branch(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    checkout = fetch(GitSource(str(origin.path), branch="release"), cache)
    assert (resolved_commit(checkout), run_flow_in(checkout)) == (origin.first, 1)

    checkout = fetch(GitSource(str(origin.path)), cache)
    assert (resolved_commit(checkout), run_flow_in(checkout)) == (origin.second, 2)


def test_a_later_fetch_sees_new_commits_and_drops_files_left_behind(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    source = GitSource(str(origin.path), branch="main")
    checkout = fetch(source, cache)
    (checkout / "output.csv").write_text("left by a run\n")
    third = commit_flow(origin.path, 3)

    assert fetch(source, cache) == checkout
    assert (resolved_commit(checkout), run_flow_in(checkout)) == (third, 3)
    assert not (checkout / "output.csv").exists()


def test_a_relative_repository_path_is_taken_from_the_current_directory(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    checkout = fetch(GitSource("origin", branch="release"), Path("cache"))
    assert resolved_commit(checkout) == origin.first


def test_a_clone_interrupted_midway_is_made_again(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    checkout = fetch(GitSource(str(origin.path)), cache)
    subprocess.run(["rm", "-rf", str(checkout / ".git")], check=True)
    (checkout / "half-written").write_text("")
    assert fetch(GitSource(str(origin.path)), cache) == checkout
    assert resolved_commit(checkout) == origin.second


def fetch_in_process(url: str, cache: str, ready: Any, results: Any) -> None:
    ready.wait(timeout=30)  # both processes start their clone together
    try:
        checkout = fetch(GitSource(url, branch="main"), Path(cache))
        results.put((str(checkout), resolved_commit(checkout), (checkout / "flows.py").read_text()))
    except Exception as exc:  # reported, so the test fails at once with the reason
        results.put(("failed", repr(exc), ""))


def test_two_processes_fetching_one_repository_at_once_both_succeed(origin: Origin, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(2), context.Queue()
    cache = str(tmp_path / "cache")
    workers = [
        context.Process(target=fetch_in_process, args=(str(origin.path), cache, ready, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    found = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert found[0] == found[1]
    assert found[0][1] == origin.second and "return 2" in found[0][2]
    assert run_flow_in(Path(found[0][0])) == 2


# -- git errors --------------------------------------------------------------------------


def test_without_git_installed_says_to_install_it(origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(SourceError) as caught:
        fetch(GitSource(str(origin.path)), tmp_path / "cache")
    message = str(caught.value)
    assert "git command is not installed" in message and "install git" in message


def test_a_failed_clone_shows_gits_own_words_and_leaves_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-repo.git"
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as caught:
        fetch(GitSource(str(missing)), cache)
    message = str(caught.value)
    assert f"cloning {str(missing)!r} failed" in message
    assert "does not exist" in message  # git's stderr: "repository '...' does not exist"
    assert "Check the URL" in message
    assert [p.name for p in cache.iterdir()] == [next(cache.iterdir()).name]  # the lock file only
    assert next(cache.iterdir()).name.endswith(".lock")


def test_an_unknown_commit_or_branch_names_it_and_lists_branches(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as caught:
        fetch(GitSource(str(origin.path), commit="deadbeef"), cache)
    assert "has no commit 'deadbeef'; its branches: main, release." in str(caught.value)

    with pytest.raises(SourceError) as caught:
        fetch(GitSource(str(origin.path), branch="nope"), cache)
    message = str(caught.value)
    assert "has no branch 'nope'; its branches: main, release." in message
    assert "Give a branch from that list" in message


def test_lists_at_most_ten_branches(origin: Origin, tmp_path: Path) -> None:
    for i in range(12):
        git(origin.path, "branch", f"b{i:02}")
    with pytest.raises(SourceError) as caught:
        fetch(GitSource(str(origin.path), branch="nope"), tmp_path / "cache")
    message = str(caught.value)
    assert "its branches: b00, b01, b02, b03, b04, b05, b06, b07, b08, b09 ..." in message
    assert "b10" not in message


def test_a_branch_name_given_as_the_commit_is_refused() -> None:
    with pytest.raises(ValueError, match="'main' is not a commit sha.*pass branch= instead"):
        GitSource("https://example.com/repo.git", commit="main")


def test_resolved_commit_outside_a_checkout_says_so(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a directory"):
        resolved_commit(tmp_path / "missing")
    with pytest.raises(SourceError) as caught:
        resolved_commit(tmp_path)
    assert "has no commit checked out" in str(caught.value)
    assert "not a git repository" in str(caught.value)  # git's own words


# -- local sources -----------------------------------------------------------------------


def test_a_local_source_is_used_where_it_is(tmp_path: Path) -> None:
    assert fetch(LocalSource(str(tmp_path)), tmp_path / "unused-cache") == tmp_path
    assert not (tmp_path / "unused-cache").exists()


def test_a_local_source_that_is_gone_says_so(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="'.*gone' is not a directory.*point the deployment"):
        fetch(LocalSource(str(tmp_path / "gone")), tmp_path / "cache")


# -- reading sources ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/flows",
        "http://git.internal/acme/flows",
        "ssh://git@github.com/acme/flows.git",
        "git@github.com:acme/flows.git",
        "file:///srv/git/flows",
        "https://github.com/acme/flows.git",
    ],
)
def test_git_urls_become_git_sources(url: str) -> None:
    assert source_from(url) == GitSource(url)


def test_local_paths_become_sources_by_their_shape(origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert source_from("origin") == LocalSource(str(origin.path.resolve()))
    assert source_from(origin.path) == LocalSource(str(origin.path.resolve()))
    assert source_from("git+origin") == GitSource(str(origin.path.resolve()))
    assert source_from("git+https://github.com/acme/flows") == GitSource("https://github.com/acme/flows")

    git(tmp_path, "clone", "--quiet", "--bare", str(origin.path), "bare.git")
    assert source_from("bare.git") == GitSource(str((tmp_path / "bare.git").resolve()))
    assert source_from("../elsewhere/remote.git") == GitSource("../elsewhere/remote.git")


def test_sources_pass_through() -> None:
    local, remote = LocalSource("/srv/flows"), GitSource("https://x/y.git", branch="b")
    assert source_from(local) is local and source_from(remote) is remote


def test_a_git_prefix_on_a_directory_that_is_no_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no .git directory"):
        source_from(f"git+{tmp_path}")


@pytest.mark.parametrize("value", ["/no/such/directory", "flows.py", ""])
def test_anything_else_is_refused_saying_what_was_expected(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flows.py").write_text("")
    if value == "":
        value = str(tmp_path / "flows.py")  # an existing file is not a directory
    with pytest.raises(ValueError) as caught:
        source_from(value)
    message = str(caught.value)
    assert repr(value) in message
    assert "an existing directory" in message and "https://" in message and "git+/path" in message


@pytest.mark.parametrize(
    "source",
    [
        LocalSource("/srv/flows"),
        GitSource("https://github.com/acme/flows.git"),
        GitSource("git@github.com:acme/flows.git", branch="release", commit="0123abcd"),
    ],
)
def test_sources_round_trip_through_plain_json(source: LocalSource | GitSource) -> None:
    stored = json.loads(json.dumps(source.to_dict()))
    assert source_from_dict(stored) == source


def test_plain_dicts_have_the_documented_shape() -> None:
    assert LocalSource("/p").to_dict() == {"kind": "local", "path": "/p"}
    assert GitSource("u", "b", "abcd").to_dict() == {"kind": "git", "url": "u", "branch": "b", "commit": "abcd"}
    with pytest.raises(ValueError, match="unknown source kind 's3'"):
        source_from_dict({"kind": "s3", "bucket": "b"})
