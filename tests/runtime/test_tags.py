"""`tags()`: every flow run and task run created inside a block carries its tags, recorded,
and a task run's tags from a block name concurrency limits as its own do.

Real flows on the thread runner and the real embedded state service (SQLite); the tags are
read back from the service, not from the in-memory records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater import flow, get_run_context, tags, task
from headwater.api import StateClient, get_recorder, recorder_target
from headwater.runners import ConcurrentTaskRunner
from tests.runtime.test_slots import intervals_in, limit, overlap, timed


@task(tags=["own"])
def work(i: int) -> str:
    """Returns its own task run's id, so the test can read that run back."""
    return str(get_run_context().task_run.id)


@task
def fan_out() -> str:
    # Called on a worker thread: this nested run is created there, in the context the thread
    # runner copied from whoever submitted `fan_out`.
    return work(100)


@flow
def child() -> dict[str, str]:
    return {"flow": str(get_run_context().flow_run.id), "task": work(50)}


def recorded_task_tags(run_id: str) -> tuple[str, ...]:
    get_recorder().flush(timeout=10)  # a flow's end flushes; a task run outside one does not
    url, token, _ = recorder_target()
    with StateClient(url, token=token) as client:
        return tuple(client.read_task_run(run_id).tags)


def recorded_flow_tags(run_id: str) -> tuple[str, ...]:
    url, token, _ = recorder_target()
    with StateClient(url, token=token) as client:
        return tuple(client.read_flow_run(run_id).tags)


def test_runs_created_inside_blocks_carry_their_tags_nested_and_restored() -> None:
    @flow(task_runner=ConcurrentTaskRunner(max_workers=4))
    def pipeline() -> dict[str, Any]:
        ids: dict[str, Any] = {"flow": str(get_run_context().flow_run.id)}
        plain = work.submit(0)
        with tags("outer"):
            outer = work.submit(1)
            with tags("inner", "outer") as current:
                assert current == {"nightly", "outer", "inner"}
                mapped = work.map([2, 3])
                nested = fan_out.submit()
                ids["child"] = child()
            after_inner = work.submit(4)
        after_outer = work.submit(5)
        ids.update(
            plain=plain.result(), outer=outer.result(), mapped=mapped.result(),
            nested=nested.result(), after_inner=after_inner.result(), after_outer=after_outer.result(),
        )  # fmt: skip
        return ids

    with tags("nightly"):
        ids = pipeline()

    everything = ("nightly", "outer", "inner")
    assert recorded_flow_tags(ids["flow"]) == ("nightly",)
    assert recorded_task_tags(ids["plain"]) == ("own", "nightly")
    assert recorded_task_tags(ids["outer"]) == ("own", "nightly", "outer")
    assert [recorded_task_tags(i) for i in ids["mapped"]] == [("own", *everything)] * 2
    assert recorded_task_tags(ids["nested"]) == ("own", *everything)
    assert recorded_flow_tags(ids["child"]["flow"]) == everything
    assert recorded_task_tags(ids["child"]["task"]) == ("own", *everything)
    assert recorded_task_tags(ids["after_inner"]) == ("own", "nightly", "outer")
    assert recorded_task_tags(ids["after_outer"]) == ("own", "nightly")


def test_a_flow_submitted_in_a_block_and_a_task_outside_any_flow_carry_its_tags() -> None:
    @flow
    def parent() -> str:
        with tags("submitted"):
            future = child.submit()
        return future.result(timeout=30)["flow"]

    child_id = parent()
    assert recorded_flow_tags(child_id) == ("submitted",)

    with tags("adhoc"):
        run_id = work(1)
    assert recorded_task_tags(run_id) == ("own", "adhoc")


def test_a_block_s_tags_name_concurrency_limits_as_a_task_s_own_do(tmp_path: Path) -> None:
    name, log = limit(1), tmp_path / "log"

    @flow(task_runner=ConcurrentTaskRunner(max_workers=4))
    def limited() -> None:
        with tags(name):
            timed.map(str(log), [0.1] * 3).wait()

    limited()
    assert overlap(intervals_in(log)) == 1


def test_leaving_a_block_restores_the_tags_even_when_it_raises() -> None:
    with tags("a") as outer:
        with pytest.raises(ValueError):
            with tags("b"):
                raise ValueError("leaves the block")
        with tags() as current:
            assert current == outer == {"a"}
    with tags() as current:
        assert current == frozenset()


def test_tags_are_separate_arguments_and_a_list_is_refused_saying_so() -> None:
    with pytest.raises(TypeError, match=r"tags\('a', 'b'\); got \['x', 'y'\] \(list\)"):
        with tags(["x", "y"]):  # type: ignore[arg-type]
            pass
