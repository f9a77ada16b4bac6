"""Futures nested in arguments are found, replaced by refs, and filled back in."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Any

from headwater import flow, task
from headwater.runners import ConcurrentTaskRunner
from headwater.runtime.arguments import UpstreamRef, allow_failure, extract_upstream, fill_upstream
from headwater.runtime.futures import TaskFuture
from headwater.runtime.runs import TaskRun, new_run_id

Pair = namedtuple("Pair", "left right")


@dataclass(frozen=True)
class Box:
    item: object
    label: str = "box"


def future() -> TaskFuture[object]:
    return TaskFuture(TaskRun(new_run_id(), "t-0", "t", None))


def test_plain_arguments_pass_through_without_copying() -> None:
    params = {"x": 1, "items": [1, 2, {"a": "b"}]}
    extracted = extract_upstream(params)
    assert extracted.parameters is params
    assert extracted.futures == []


def test_nested_futures_become_refs_and_are_filled_back() -> None:
    f1, f2 = future(), future()
    params = {
        "direct": f1,
        "nested": [1, (f2, {"k": f1})],
        "named": Pair(f2, 3),
        "boxed": Box(f1),
        "plain": "text",
    }
    extracted = extract_upstream(params)
    assert extracted.futures == [f1, f2]
    assert extracted.parameters["direct"] == UpstreamRef(0)
    assert extracted.lineage == {"direct": (0,), "nested": (1, 0), "named": (1,), "boxed": (0,)}
    filled = fill_upstream(extracted.parameters, ("one", "two"))
    assert filled == {
        "direct": "one",
        "nested": [1, ("two", {"k": "one"})],
        "named": Pair("two", 3),
        "boxed": Box("one"),
        "plain": "text",
    }


def test_allow_failure_marks_an_upstream_optional_and_wait_for_is_required() -> None:
    tolerated, required, waited = future(), future(), future()
    extracted = extract_upstream({"a": allow_failure(tolerated), "b": required}, wait_for=(waited,))
    assert extracted.futures == [tolerated, required, waited]
    assert extracted.required == frozenset({1, 2})


def test_allow_failure_covers_every_future_nested_within_it() -> None:
    from headwater.runtime.futures import FutureList

    f1, f2, f3, f4, required = future(), future(), future(), future(), future()
    extracted = extract_upstream(
        {
            "listed": allow_failure([f1, {"k": f2}]),
            "mapped": allow_failure(FutureList([f3])),
            "both": [required, allow_failure(required)],  # required once is required
        },
        wait_for=(allow_failure([f4]),),
    )
    assert extracted.futures == [f1, f2, f3, required, f4]
    assert extracted.required == frozenset({3})
    filled = fill_upstream(extracted.parameters, ("a", "b", "c", "r", "d"))
    assert filled == {"listed": ["a", {"k": "b"}], "mapped": ["c"], "both": ["r", "r"]}


@task
def ok() -> int:
    return 1


@task
def bad() -> int:
    raise ValueError("bad")


@task
def echo(value: Any = None) -> Any:
    return value


def test_a_list_wrapped_in_allow_failure_reaches_the_task_with_the_exception() -> None:
    @flow(task_runner=ConcurrentTaskRunner(max_workers=2))
    def tolerant() -> Any:
        return echo.submit(allow_failure([ok.submit(), bad.submit()])).result(timeout=5)

    value, error = tolerant()
    assert value == 1 and isinstance(error, ValueError)


def test_wait_for_a_list_wrapped_in_allow_failure_runs_after_a_failure() -> None:
    @flow(task_runner=ConcurrentTaskRunner(max_workers=2))
    def tolerant() -> Any:
        futures = [ok.submit(), bad.submit()]
        return echo.submit("ran", wait_for=[allow_failure(futures)]).result(timeout=5)

    assert tolerant() == "ran"


def test_a_future_list_argument_is_walked_and_filled_as_a_plain_list() -> None:
    from headwater.runtime.futures import FutureList

    f1, f2 = future(), future()
    extracted = extract_upstream({"values": FutureList([f1, f2])})
    assert extracted.futures == [f1, f2]
    assert fill_upstream(extracted.parameters, (1, 2)) == {"values": [1, 2]}
