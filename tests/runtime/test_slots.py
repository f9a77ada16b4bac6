"""Concurrency limits on task runs and around code: the limit is never exceeded, slots are
taken only once inputs are ready and without holding a runner's worker, given back however
the attempt ends, and the wait shows in the run's history. Against the embedded state
service (real gRPC on 127.0.0.1); on Dask against the session's shared cluster."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from headwater import SlotTimeout, SlotUnavailable, concurrency, flow, rate_limit, task
from headwater.api import StateClient, recorder_target
from headwater.runners import ConcurrentTaskRunner
from headwater.runtime.slots import slot_client


def limit(n: int, decay: float = 0.0) -> str:
    """A fresh limit of `n` slots on the service this process records into; its name."""
    name = f"lim-{uuid.uuid4().hex[:8]}"
    slot_client(recorder_target()).create_limit(name, n, slot_decay_per_second=decay)
    return name


def active(name: str) -> int:
    return int(slot_client(recorder_target()).read_limit(name).active)


def overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def intervals_in(log: Path) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in (line.split() for line in log.read_text().split("\n") if line)]


@task
def timed(log: str, seconds: float) -> None:
    start = time.time()
    time.sleep(seconds)
    with open(log, "a") as file:
        file.write(f"{start} {time.time()}\n")


def test_a_tag_limit_is_never_exceeded_and_the_wait_is_in_the_history(tmp_path: Path) -> None:
    name, log = limit(2), tmp_path / "log"

    @flow(task_runner=ConcurrentTaskRunner(max_workers=8))
    def run() -> list[Any]:
        futures = timed.with_options(tags=[name]).map(str(log), [0.1] * 8)
        futures.wait()
        return [f.task_run.id for f in futures]

    ids = run()
    assert overlap(intervals_in(log)) == 2
    assert active(name) == 0
    url, token, _ = recorder_target()
    with StateClient(url, token=token) as client:
        histories = [[s.name for s in client.read_history(i)] for i in ids]
    assert all(h[-2:] == ["Running", "Completed"] for h in histories)
    assert sum("AwaitingConcurrencySlot" in h for h in histories) >= 6  # 2 got in at once


def test_a_waiting_run_holds_no_worker_thread(tmp_path: Path) -> None:
    name, log = limit(1), tmp_path / "log"

    @task
    def quick() -> float:
        return time.monotonic()

    @flow(task_runner=ConcurrentTaskRunner(max_workers=2))
    def run() -> tuple[float, float]:
        started = time.monotonic()
        timed.with_options(tags=[name]).map(str(log), [0.3] * 4)
        return started, quick.submit().result()

    started, quick_done = run()
    assert quick_done - started < 0.25  # 3 runs wait for the slot; none of them on a thread


def test_slots_are_taken_only_once_inputs_are_ready(tmp_path: Path) -> None:
    name = limit(1)
    seen: list[int] = []

    @task
    def upstream() -> int:
        time.sleep(0.3)
        seen.append(active(name))  # the downstream has not taken the slot meanwhile
        return 1

    @task(tags=[name])
    def downstream(x: int) -> int:
        return x + 1

    @flow(task_runner=ConcurrentTaskRunner())
    def run() -> int:
        return downstream.submit(upstream.submit()).result()

    assert run() == 2 and seen == [0]


def test_every_way_an_attempt_ends_gives_the_slot_back(tmp_path: Path) -> None:
    name = limit(1)

    @task(tags=[name])
    def fails() -> None:
        raise ValueError("no")

    @task(tags=[name], timeout_seconds=0.1)
    def too_slow() -> None:
        time.sleep(1)

    @task(tags=[name], retries=1)
    def flaky(log: str) -> int:
        if not Path(log).exists():
            Path(log).write_text("x")
            raise RuntimeError("first attempt")
        return 1

    @task(tags=[name])
    def fine() -> int:
        return 1

    @flow(task_runner=ConcurrentTaskRunner())
    def run() -> list[str]:
        futures = [fails.submit(), too_slow.submit(), flaky.submit(str(tmp_path / "f")), fine.submit()]
        return [f.wait() or f.state.name for f in futures]

    assert run() == ["Failed", "TimedOut", "Completed", "Completed"]
    assert active(name) == 0
    assert fine(return_state=True).name == "Completed" and active(name) == 0  # a direct call too


def test_a_limit_of_zero_fails_the_run_at_once() -> None:
    name = limit(0)

    @task(tags=[name])
    def never() -> None:
        raise AssertionError("must not run")

    @flow
    def run() -> Any:
        future = never.submit()
        future.wait()
        return SimpleNamespace(state=future.state)  # a flow returning a State would end in it

    started = time.monotonic()
    submitted = run().state
    assert submitted.is_failed() and name in (submitted.message or "")
    direct = never(return_state=True)
    assert direct.is_failed() and name in (direct.message or "")
    with pytest.raises(SlotUnavailable, match=name):
        with concurrency(name):
            pass
    assert time.monotonic() - started < 5


def test_concurrency_around_code_sync_and_async_with_a_timeout() -> None:
    name = limit(1)
    with concurrency(name):
        assert active(name) == 1
        with pytest.raises(SlotTimeout, match=name):
            with concurrency(name, timeout_seconds=0.2):
                pass
    assert active(name) == 0

    async def main() -> int:
        async with concurrency([name], occupy=1):
            return active(name)

    assert asyncio.run(main()) == 1 and active(name) == 0


def test_a_name_with_no_limit_limits_nothing_unless_strict() -> None:
    unknown = f"nolimit-{uuid.uuid4().hex[:8]}"
    with concurrency(unknown):
        pass
    with pytest.raises(SlotUnavailable, match=unknown):
        with concurrency(unknown, strict=True):
            pass


def test_rate_limit_admits_a_burst_then_the_decay_rate() -> None:
    name = limit(2, decay=10.0)
    started = time.monotonic()
    for _ in range(6):
        rate_limit(name)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0  # 2 at once, then 4 more at 10 per second


def test_with_recording_off_tags_limit_nothing_and_concurrency_says_why(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = (
        "from headwater import SlotUnavailable, concurrency, flow, task\n"
        "@task(tags=['warehouse'])\n"
        "def t(): return 1\n"
        "@flow\n"
        "def f(): return t()\n"
        "assert f() == 1\n"
        "try:\n"
        "    with concurrency('warehouse'): pass\n"
        "except SlotUnavailable as e: print(e)\n"
    )
    env = {**os.environ, "HEADWATER_RECORD": "0", "HEADWATER_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "recording is off" in out.stdout


def test_a_killed_flow_process_frees_its_slot_within_the_lease(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from headwater.api import worker_environment

    name, started = limit(1), tmp_path / "started"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from headwater import flow, task\n"
        f"@task(tags=[{name!r}])\n"
        "def hold():\n"
        f"    Path({str(started)!r}).write_text('x')\n"
        "    time.sleep(60)\n"
        "@flow\n"
        "def f(): hold.submit().wait()\n"
        "f()\n"
    )
    env = {**os.environ, **worker_environment(), "HEADWATER_SLOT_LEASE_SECONDS": "1.5"}
    holder = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists() and active(name) == 1
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        killed = time.monotonic()
        with concurrency(name, timeout_seconds=10):  # waits for the dead holder's lease to end
            waited = time.monotonic() - killed
        assert waited < 3.0  # within the 1.5 s lease (and the service's expiry timer)
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)


def test_a_flow_that_times_out_while_runs_wait_cancels_their_requests(tmp_path: Path) -> None:
    name, log = limit(1), tmp_path / "log"
    futures: list[Any] = []

    @flow(task_runner=ConcurrentTaskRunner(), timeout_seconds=0.2)
    def run() -> None:
        futures.extend(timed.with_options(tags=[name]).map(str(log), [0.3] * 3))
        time.sleep(5)

    assert run(return_state=True).name == "TimedOut"
    for future in futures:
        future.wait(10)
    names = sorted(f.state.name for f in futures)
    assert names.count("Cancelled") == 2, names  # the two that were waiting for the slot
    deadline = time.monotonic() + 5
    while active(name) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert active(name) == 0
    assert slot_client(recorder_target()).read_limit(name).waiting == 0


def test_tagged_runs_on_the_sequential_runner(tmp_path: Path) -> None:
    from headwater.runners import SequentialTaskRunner

    name, log = limit(1), tmp_path / "log"

    @flow(task_runner=SequentialTaskRunner())
    def run() -> list[str]:
        futures = timed.with_options(tags=[name]).map(str(log), [0.01] * 3)
        futures.wait()
        return [f.state.name for f in futures]

    assert run() == ["Completed"] * 3 and overlap(intervals_in(log)) == 1 and active(name) == 0
