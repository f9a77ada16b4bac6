"""Result caching in the engine, on threads with the embedded state service: hits that skip
the function and are recorded with their key, keys that change when they must, expiry,
refresh, damaged entries, unhashable inputs, a chain that hits without loading upstream data,
and one key computed by two processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from headwater import flow, task
from headwater.api import StateClient, recorder_target, reset_recorder, worker_environment
from headwater.cache import DEFAULT, FLOW_PARAMETERS, INPUTS, NONE, RUN_ID, TASK_SOURCE, UncacheableCall, task_input_hash
from headwater.runtime.caching import CachedValue, store_for
from headwater.runtime.journal import flush_journals
from headwater.runtime.states import Detached

from ..runners.side_effects import executions
from . import cache_tasks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _service_in_this_home() -> Any:
    """The embedded state service (and so the cache it serves) in this test's home, as a
    process started here would have it."""
    reset_recorder()
    yield
    reset_recorder()


def counted(log: Path, **options: Any) -> Any:
    """A cached task counting its calls in `log`."""

    @task(cache_policy=INPUTS + TASK_SOURCE, **options)
    def double(x: int, tag: str = "") -> int:
        with open(log, "a") as file:
            file.write("x\n")
        return x * 2

    return double


def returning_state(fn: Any) -> Any:
    """A flow that hands back the state `fn` returns (a flow returning a State ends in it)."""
    wrapped = flow(name=fn.__name__)(lambda *args: SimpleNamespace(state=fn(*args)))
    return lambda *args: wrapped(*args).state


def calls(log: Path) -> int:
    return len(log.read_text().split()) if log.exists() else 0


def history_names(run_id: Any) -> list[tuple[str, str | None]]:
    url, token, _ = recorder_target()
    with StateClient(url, token=token) as client:
        return [(s.name, s.message) for s in client.read_history(run_id)]


def test_a_hit_returns_the_value_without_calling_and_is_recorded_with_its_key(tmp_path: Path) -> None:
    double = counted(tmp_path / "log")

    @returning_state
    def twice(tag: str) -> Any:
        return double(21, tag, return_state=True)

    first = twice(str(tmp_path))
    second = twice(str(tmp_path))
    assert (first.name, second.name) == ("Completed", "Cached")
    assert second.result() == 42 and calls(tmp_path / "log") == 1
    assert isinstance(second.data, Detached) and isinstance(second.data.handle, CachedValue)
    assert second.message == f"cache hit: key {second.data.handle.key}"


def test_the_hit_is_in_the_recorded_history(tmp_path: Path) -> None:
    double = counted(tmp_path / "log")

    @flow
    def run() -> Any:
        future = double.submit(5, str(tmp_path))
        future.wait()
        return future.task_run.id

    run()
    task_run_id = run()
    names = history_names(task_run_id)
    assert [n for n, _ in names] == ["Pending", "Running", "Cached"]
    assert names[-1][1] is not None and names[-1][1].startswith("cache hit: key ")


def test_different_inputs_miss_equal_ones_hit(tmp_path: Path) -> None:
    double = counted(tmp_path / "log")

    @flow
    def run(xs: list[int]) -> list[int]:
        return [f.result() for f in double.map(xs, tag=str(tmp_path))]

    assert run([1, 2, 3]) == [2, 4, 6]
    assert run([3, 2, 1, 4]) == [6, 4, 2, 8]
    assert calls(tmp_path / "log") == 4


def test_equal_inputs_hit_in_another_process(tmp_path: Path) -> None:
    log = str(tmp_path / "p")
    assert cache_tasks.compute_once(log, 0.0, False) == list(range(10_000))
    code = "import sys; from tests.runtime import cache_tasks as c; print(len(c.compute_once(sys.argv[1], 0.0, False)))"
    out = subprocess.run(
        [sys.executable, "-c", code, log], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, **worker_environment()},  # records into, and caches through, ours
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "10000"
    assert len(executions(Path(log))) == 1


def test_a_changed_closure_or_source_gives_a_new_key(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def make(n: int, body: str = "return x + n") -> Any:
        scope: dict[str, Any] = {"n": n, "log": log}
        exec(f"def add(x):\n    open(log, 'a').write('x\\n')\n    {body}\n", scope)  # noqa: S102
        return task(cache_policy=TASK_SOURCE + INPUTS)(scope["add"])

    @flow
    def run(t: Any) -> int:
        return t(1)  # type: ignore[no-any-return]

    assert run(make(1)) == 2
    assert run(make(1)) == 2 and calls(log) == 1  # same code, same closure: a hit
    assert run(make(2)) == 3 and calls(log) == 2  # the value it closes over changed
    assert run(make(1, "return x + n + 0")) == 2 and calls(log) == 3  # the code changed


def test_expiration(tmp_path: Path) -> None:
    double = counted(tmp_path / "log", cache_expiration=timedelta(seconds=0.3))

    @flow
    def run() -> int:
        return double(1, str(tmp_path))  # type: ignore[no-any-return]

    run()
    run()
    assert calls(tmp_path / "log") == 1
    time.sleep(0.4)
    run()
    assert calls(tmp_path / "log") == 2


def test_refresh_computes_and_stores_over_the_entry(tmp_path: Path) -> None:
    log = tmp_path / "log"
    double = counted(log)

    @returning_state
    def run(t: Any) -> Any:
        return t(3, str(tmp_path), return_state=True)

    run(double)
    refreshed = run(double.with_options(refresh_cache=True))
    assert refreshed.name == "Completed" and calls(log) == 2
    assert run(double).name == "Cached" and calls(log) == 2


@pytest.mark.parametrize("damage", ["tamper", "truncate", "delete"])
def test_a_damaged_entry_is_a_miss_that_recomputes_and_rewrites(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "log"
    double = counted(log, cache_result_in_memory=True)

    @returning_state
    def run() -> Any:
        return double(4, str(tmp_path), return_state=True)

    assert run().name == "Completed"
    hit = run()
    assert isinstance(hit.data, Detached)
    key = hit.data.handle.key
    store = store_for(recorder_target())
    blob_key = "value:" + key
    blob = store._cache.get(blob_key)
    if damage == "tamper":
        store._cache.set(blob_key, blob[:-1] + bytes([blob[-1] ^ 1]))
    elif damage == "truncate":
        store._cache.set(blob_key, blob[: len(blob) // 2])
    else:
        store._cache.delete(blob_key)
    with caplog.at_level("WARNING", logger="headwater.cache"):
        again = run()
    assert again.name == "Completed" and again.result() == 8 and calls(log) == 2
    assert any("unusable" in r.getMessage() for r in caplog.records)
    assert run().name == "Cached"  # rewritten


def test_an_unhashable_input_runs_uncached_with_a_warning_and_strict_fails(tmp_path: Path) -> None:
    log = tmp_path / "log"
    double = counted(log)
    lock = threading.Lock()

    @returning_state
    def run(t: Any) -> Any:
        return t(2, lock, return_state=True)  # type: ignore[arg-type]

    with pytest.warns(UncacheableCall, match=r"argument 'tag'.*lock"):
        assert run(double).result() == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncacheableCall)
        assert run(double).name == "Completed" and calls(log) == 2
    strict = double.with_options(cache_policy=(INPUTS + TASK_SOURCE).strict())
    state = run(strict)
    assert state.is_failed() and "argument 'tag'" in state.message and calls(log) == 2


def test_leaving_an_argument_out_of_the_key(tmp_path: Path) -> None:
    log = tmp_path / "log"
    double = counted(log).with_options(cache_policy=TASK_SOURCE + INPUTS - "tag")

    @returning_state
    def run(tag: str) -> Any:
        return double(7, tag, return_state=True)

    assert run("a").name == "Completed"
    assert run("b").name == "Cached" and calls(log) == 1


def test_a_cached_chain_hits_end_to_end_without_loading_upstream_data(tmp_path: Path) -> None:
    log = str(tmp_path / "chain")
    assert cache_tasks.chain(log, 3) == [0, 1, 2, 3, 4]
    runs, grows = executions(Path(log + ".runs")), executions(Path(log + ".grow"))
    loads = len(executions(Path(log + ".loads")))
    assert cache_tasks.chain(log, 3) == [0, 1, 2, 3, 4]
    assert executions(Path(log + ".runs")) == runs and executions(Path(log + ".grow")) == grows
    # only the last value was loaded, by the flow that asked for it: not the two upstreams'
    assert len(executions(Path(log + ".loads"))) == loads + 1


def _start(log: Path, seconds: float, mode: str) -> subprocess.Popen[str]:
    """A process running `compute_once`, recording into (and caching through) this one's
    state service, as a worker would."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.cache_tasks", str(log), str(seconds), mode],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **worker_environment()},
    )  # fmt: skip


def _race(log: Path, seconds: float, mode: str) -> list[subprocess.Popen[str]]:
    return [_start(log, seconds, mode) for _ in range(2)]


def test_two_processes_racing_on_one_key_end_with_one_correct_value(tmp_path: Path) -> None:
    log = tmp_path / "racing"
    procs = _race(log, 0.3, "racing")
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-3000:] for _, err in outs]
    assert [o.strip() for o, _ in outs] == ["10000", "10000"]
    assert cache_tasks.compute_once(str(log), 0.3, False) == list(range(10_000))
    assert len(executions(log)) <= 2  # both may compute; the entry is whole either way


def test_single_flight_computes_once_across_processes(tmp_path: Path) -> None:
    log = tmp_path / "once"
    procs = _race(log, 1.0, "single")
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert [o.strip() for o, _ in outs] == ["42", "42"]
    assert len(executions(log)) == 1


def test_single_flight_takes_over_from_a_killed_holder(tmp_path: Path) -> None:
    log = tmp_path / "killed"
    holder = _start(log, 30, "single")
    deadline = time.monotonic() + 30
    while not executions(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    holder.kill()
    holder.wait()
    started = time.monotonic()
    assert cache_tasks.compute_once(str(log), 0.0, True) == 42
    assert time.monotonic() - started < 10  # the 2 s lease ran out; it did not wait 30 s
    assert len(executions(log)) == 2


def test_not_kept_in_memory_leaves_the_value_in_the_cache(tmp_path: Path) -> None:
    double = counted(tmp_path / "log", cache_result_in_memory=False)

    @returning_state
    def run() -> Any:
        return double(6, str(tmp_path), return_state=True)

    state = run()
    assert state.name == "Completed" and isinstance(state.data, Detached)
    assert state.result() == 12


def test_persist_result_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="persist_result=False"):
        task(cache_policy=INPUTS, persist_result=False)(lambda x: x)
    assert task(persist_result=False)(lambda x: x).cache is None
    assert task(cache_policy=NONE)(lambda x: x).cache is None
    persisted = task(persist_result=True)(lambda x: x)
    assert persisted.cache is not None and persisted.cache.policy == DEFAULT
    with pytest.raises(TypeError, match="cache_expiration"):
        task(cache_policy=INPUTS, cache_expiration=30)(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cache_policy"):
        task(cache_policy="inputs")(lambda x: x)


def test_default_policy_reuses_only_within_the_flow_run(tmp_path: Path) -> None:
    log = tmp_path / "log"
    double = counted(log).with_options(cache_policy=DEFAULT)

    @flow
    def run() -> list[str]:
        return [double(1, str(tmp_path), return_state=True).name for _ in range(2)]

    assert run() == ["Completed", "Cached"]
    assert run() == ["Completed", "Cached"] and calls(log) == 2
    assert RUN_ID in DEFAULT.policies  # type: ignore[attr-defined]


def test_a_prefect_style_key_function(tmp_path: Path) -> None:
    log = tmp_path / "log"
    double = counted(log).with_options(cache_policy=None, cache_key_fn=task_input_hash)

    @flow
    def run() -> list[str]:
        return [double(1, str(tmp_path), return_state=True).name for _ in range(2)]

    assert run() == ["Completed", "Cached"] and calls(log) == 1


def test_explain_notes_are_written_by_the_flows_end(tmp_path: Path) -> None:
    double = counted(tmp_path / "log")

    @flow
    def run() -> Any:
        future = double.submit(9, str(tmp_path))
        future.wait()
        return future.task_run.id

    first, second = run(), run()
    flush_journals()
    store = store_for(recorder_target())
    miss, hit = store.note(str(first)), store.note(str(second))
    assert (miss.outcome, hit.outcome) == ("miss", "hit")
    assert miss.key == hit.key and "argument 'x'" in hit.components


def test_values_in_result_storage(tmp_path: Path) -> None:
    storage = tmp_path / "results"
    double = counted(tmp_path / "log", result_storage=str(storage))

    @returning_state
    def run() -> Any:
        return double(10, str(tmp_path), return_state=True)

    assert run().name == "Completed"
    (stored,) = list(storage.iterdir())
    hit = run()
    assert hit.name == "Cached" and hit.result() == 20
    stored.write_bytes(b"not the value")  # changed behind the cache's back: a miss, recomputed
    again = run()
    assert again.name == "Completed" and again.result() == 20 and calls(tmp_path / "log") == 2
    assert run().name == "Cached"


def test_flow_parameters_in_the_key(tmp_path: Path) -> None:
    log = tmp_path / "log"
    double = counted(log).with_options(cache_policy=FLOW_PARAMETERS + INPUTS)

    @flow
    def run(region: str) -> int:
        return double(1, str(tmp_path))  # type: ignore[no-any-return]

    run("eu")
    run("eu")
    run("us")
    assert calls(log) == 2
