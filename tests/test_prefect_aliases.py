"""The import paths a Prefect user types work (issue #13): a Prefect-style program, ported by
renaming `prefect` to `headwater`, runs on real threads and records into the real state
service. What each alias exports is pinned in `test_public_api.py`."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

from headwater import flow
from headwater.context import get_run_context, tags
from headwater.futures import TaskFuture, as_completed, wait
from headwater.logging import get_run_logger
from headwater.runtime import flow_run
from headwater.states import Completed, Failed, State, StateType
from headwater.task_runners import ConcurrentTaskRunner, ThreadPoolTaskRunner
from headwater.tasks import exponential_backoff, task, task_input_hash


def test_a_prefect_style_flow_runs_through_the_aliases() -> None:
    failures_left = [2]
    lock = threading.Lock()

    @task(cache_key_fn=task_input_hash)
    def square(x: int) -> int:  # closes over nothing: its source and inputs are its key
        return x * x

    @task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=0.01))
    def flaky() -> str:
        with lock:
            failures_left[0] -= 1
            if failures_left[0] >= 0:
                raise ConnectionError("try again")
        get_run_logger().info("succeeded on attempt %s", get_run_context().task_run.run_count)
        return "ok"

    @task
    def judged(x: int) -> State:
        return Completed(x) if x % 2 else Failed(message=f"{x} is even")

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=3))
    def ported(xs: list[int]) -> dict[str, Any]:
        futures = square.map(xs)
        done, not_done = wait(futures, timeout=30)
        squares = sorted(f.result() for f in as_completed(futures))
        again = square.submit(xs[0], return_state=True)  # same input: answered by the cache
        states = [judged.submit(x, return_state=True) for x in (1, 2)]
        return {
            "squares": squares, "pending": len(not_done), "done": len(done),
            "cached": (again.name, again.result()), "flaky": flaky(),
            "states": [s.type for s in states], "future": isinstance(futures[0], TaskFuture),
            "flow": flow_run.flow_name,
        }  # fmt: skip

    with tags("ported"):
        out = ported([1, 2, 3])

    assert out == {
        "squares": [1, 4, 9], "pending": 0, "done": 3, "cached": ("Cached", 1), "flaky": "ok",
        "states": [StateType.COMPLETED, StateType.FAILED], "future": True, "flow": "ported",
    }  # fmt: skip


def test_thread_pool_task_runner_is_the_concurrent_runner_taking_max_workers() -> None:
    assert ThreadPoolTaskRunner is ConcurrentTaskRunner
    assert ThreadPoolTaskRunner(max_workers=3).max_workers == 3
    assert exponential_backoff(backoff_factor=2)(3) == [2, 4, 8]  # Prefect's delays, per retry


def test_the_aliases_load_the_optional_runners_only_when_asked() -> None:
    code = (
        "import sys\n"
        "import headwater.futures, headwater.states, headwater.task_runners, headwater.context\n"
        "import headwater.logging, headwater.tasks\n"
        "from headwater.runtime import flow_run, task_run, deployment\n"
        "heavy = [m for m in ('dask', 'distributed', 'ray', 'grpc') if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
        "import headwater.runners, headwater.task_runners as tr\n"
        "print(tr.DaskTaskRunner is headwater.runners.DaskTaskRunner, 'distributed' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["none", "True", "True"]
