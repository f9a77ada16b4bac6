"""`async def` tasks and flows, mixed freely with sync ones."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest

from headwater import RunTimedOut, flow, task


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@task
def sync_inc(x: int) -> int:
    return x + 1


def test_a_sync_flow_submits_async_tasks_and_they_overlap() -> None:
    @task
    async def nap() -> float:
        await asyncio.sleep(0.2)
        return time.monotonic()

    @flow
    def mixed() -> tuple[list[int], float]:
        started = time.monotonic()
        doubled = async_double.map([1, 2, 3]).result()
        naps = [nap.submit() for _ in range(4)]
        [f.wait() for f in naps]
        return doubled, time.monotonic() - started

    doubled, elapsed = mixed()
    assert doubled == [2, 4, 6]
    assert elapsed < 0.6  # four 0.2 s naps ran concurrently


def test_an_async_flow_awaits_async_tasks_and_submits_sync_ones() -> None:
    @flow
    async def pipeline(x: int) -> int:
        doubled = await async_double(x)
        return sync_inc.submit(doubled).result()

    assert anyio.run(pipeline, 4) == 9
    assert asyncio.run(pipeline(5)) == 11


def test_async_task_timeout_cancels_it() -> None:
    @task(timeout_seconds=0.1)
    async def forever() -> None:
        await asyncio.sleep(10)

    @flow
    async def run_it() -> None:
        state = await forever(return_state=True)
        assert state.name == "TimedOut" and isinstance(state.data, RunTimedOut)

    started = time.monotonic()
    asyncio.run(run_it())
    assert time.monotonic() - started < 2


def test_async_flow_failure_raises_to_the_awaiter() -> None:
    @flow
    async def broken() -> None:
        raise LookupError("async failure")

    with pytest.raises(LookupError):
        asyncio.run(broken())


def test_sync_flow_calls_an_async_subflow_via_submit() -> None:
    @flow
    async def child(x: int) -> int:
        return await async_double(x)

    @flow
    def parent() -> int:
        return child.submit(3).result(timeout=10)

    assert parent() == 6
