"""`headwater cache ls/stats/clear/explain` on a real cache: the home's own, and a standalone
server's through HEADWATER_API_URL."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.api import RemoteStore, StateClient, StateServer
from headwater.cache.entries import RunNote
from headwater.cache.store import LocalStore
from headwater.cli import main
from tests.api.helpers import flow, start_server_process, stop_process, task

TOKEN = "cli-cache-token"
OLD, NEW, OTHER = "0a" * 32, "0b" * 32, "0c" * 32
COMPONENTS = {"task source": "5a5a", "argument 'x'": "1111"}


def _fill(store: LocalStore | RemoteStore, run_id: str) -> None:
    """Two entries of `load` (the second one's run missed: its x changed), one of `train`."""
    store.put(OLD, [1], task="load", components={**COMPONENTS, "argument 'x'": "0000"})
    store.put(NEW, [2], task="load", components=COMPONENTS, expires=time.time() + 3600)
    store.put(OTHER, b"z" * 5000, task="train", components={"task source": "77"})
    store.record([RunNote(run_id, "load", NEW, COMPONENTS, "miss", "", time.time())], hits=3, misses=1)


def _home() -> Path:
    return Path(os.environ["HEADWATER_HOME"])


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def local_run() -> Iterator[str]:
    run_id = str(uuid.uuid4())
    store = LocalStore(_home() / "cache", _home() / "cache.key")
    _fill(store, run_id)
    store.close()
    yield run_id


def test_ls_stats_and_clear_on_the_homes_cache(local_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    listed = _json(capsys, "cache", "ls")
    assert isinstance(listed, list)
    assert [e["key"] for e in listed] == [OTHER, NEW, OLD]  # newest first
    by_key = {e["key"]: e for e in listed}
    assert by_key[NEW]["task"] == "load" and by_key[NEW]["expires"].endswith("+00:00")
    assert by_key[OLD]["expires"] is None and by_key[OTHER]["size"] > 5000
    assert [e["key"] for e in _json(capsys, "cache", "ls", "--task", "train")] == [OTHER]
    stats = _json(capsys, "cache", "stats")
    assert isinstance(stats, dict)
    assert (stats["entries"], stats["hits"], stats["misses"]) == (3, 3, 1) and stats["bytes"] > 5000
    code, out, _ = _run(capsys, "cache", "ls")
    assert code == 0 and "cache entries (3)" in out and "train" in out
    code, out, _ = _run(capsys, "cache", "stats")
    assert "entries: 3" in out and "(75% hits)" in out
    assert _json(capsys, "cache", "clear", "--older-than", "1h") == {"cleared": 0}
    assert _json(capsys, "cache", "clear", "--task", "train") == {"cleared": 1}
    code, out, _ = _run(capsys, "cache", "clear")
    assert (code, out.strip()) == (0, "cleared 2 cache entries")


def test_explain_says_which_components_changed(local_run: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = _json(capsys, "cache", "explain", local_run)
    assert isinstance(result, dict)
    assert (result["outcome"], result["key"], result["entry"]["key"]) == ("miss", NEW, NEW)
    assert result["nearest"]["key"] == OLD and result["nearest"]["differs"] == ["argument 'x'"]
    assert result["at"].endswith("+00:00")
    code, out, _ = _run(capsys, "cache", "explain", local_run)
    assert code == 0
    assert "differs in: argument 'x'." in out and f"nearest:    {OLD}" in out


def test_explain_of_a_run_without_a_record_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    run_id = str(uuid.uuid4())
    code, out, err = _run(capsys, "cache", "explain", run_id)
    assert (code, out) == (1, "")
    assert f"run {run_id} has no cache record: its task has no cache policy, or the run is older than 30 days" in err
    code, out, err = _run(capsys, "cache", "explain", "12ab")  # a prefix no run has
    assert code == 1 and "run 12ab has no cache record" in err


def test_a_bad_duration_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["cache", "clear", "--older-than", "7 days"])
    assert info.value.code == 2
    assert "'7 days' is not a duration" in capsys.readouterr().err


def test_explain_takes_a_prefix_known_to_the_run_records(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a server on this very home: the cache is read from the directory, the prefix is
    resolved by the server's run records."""
    srv = StateServer(_home(), port=0, token=TOKEN, synchronous="NORMAL")
    srv.start()
    try:
        with StateClient(srv.url, token=TOKEN) as client:
            parent = flow("etl")
            client.create_flow_run(parent)
            run = task(parent.id, "load")
            client.create_task_run(run)
        with RemoteStore(srv.url, token=TOKEN) as remote:
            _fill(remote, str(run.id))
        monkeypatch.setenv("HEADWATER_API_URL", srv.url)
        monkeypatch.setenv("HEADWATER_API_TOKEN", TOKEN)
        result = _json(capsys, "cache", "explain", str(run.id)[:8])
        assert isinstance(result, dict) and result["run_id"] == str(run.id)
        assert result["nearest"]["differs"] == ["argument 'x'"]
    finally:
        srv.stop(0.5)


def test_the_verbs_work_against_a_standalone_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, url = start_server_process(tmp_path / "server-home", "--token", TOKEN)
    try:
        run_id = str(uuid.uuid4())
        with RemoteStore(url, token=TOKEN) as remote:
            _fill(remote, run_id)
        monkeypatch.setenv("HEADWATER_API_URL", url)
        monkeypatch.setenv("HEADWATER_API_TOKEN", TOKEN)
        assert [e["key"] for e in _json(capsys, "cache", "ls")] == [OTHER, NEW, OLD]
        assert _json(capsys, "cache", "stats") == {"entries": 3, "bytes": pytest.approx(5100, rel=0.2), "hits": 3, "misses": 1}
        explained = _json(capsys, "cache", "explain", run_id)
        assert isinstance(explained, dict) and explained["nearest"]["differs"] == ["argument 'x'"]
        assert _json(capsys, "cache", "clear", "--task", "load") == {"cleared": 2}
        assert not (_home() / "cache").exists()  # nothing was read or made locally
        monkeypatch.setenv("HEADWATER_API_TOKEN", "wrong")
        code, _, err = _run(capsys, "cache", "stats")
        assert code == 1 and "headwater cache: invalid bearer token" in err
    finally:
        stop_process(proc)
