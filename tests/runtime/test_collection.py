"""Full collections deferred while flows run (`runtime/collection.py`), with real flows on
real threads: the threshold while a flow runs, put back when the last one ends, a user's own
change kept, the switch off, and young cycles still freed during a flow."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from headwater import flow, task
from headwater.runners import ConcurrentTaskRunner
from headwater.runtime.collection import DEFERRED_THRESHOLD


@pytest.fixture(autouse=True)
def default_thresholds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HEADWATER_RECORD", "0")
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def test_a_flow_raises_the_oldest_threshold_and_puts_it_back() -> None:
    @flow
    def seen() -> tuple[int, int, int]:
        return gc.get_threshold()

    assert seen() == (700, 10, DEFERRED_THRESHOLD)
    assert gc.get_threshold() == (700, 10, 10)


def test_the_threshold_comes_back_only_when_the_last_of_two_concurrent_flows_ends() -> None:
    inside, release = threading.Event(), threading.Event()

    @flow
    def holds() -> None:
        inside.set()
        assert release.wait(10)

    @flow
    def quick() -> tuple[int, int, int]:
        return gc.get_threshold()

    other = threading.Thread(target=holds)
    other.start()
    try:
        assert inside.wait(10)
        assert quick() == (700, 10, DEFERRED_THRESHOLD)
        assert gc.get_threshold() == (700, 10, DEFERRED_THRESHOLD)  # `holds` still runs
    finally:
        release.set()
        other.join(10)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_threshold_the_flow_changed_itself_stands_after_it() -> None:
    @flow
    def tunes() -> None:
        gc.set_threshold(1000, 20, 30)

    tunes()
    assert gc.get_threshold() == (1000, 20, 30)


def test_a_rarer_threshold_already_set_is_left_as_it_is() -> None:
    gc.set_threshold(700, 10, 5000)

    @flow
    def seen() -> tuple[int, int, int]:
        return gc.get_threshold()

    assert seen() == (700, 10, 5000)
    assert gc.get_threshold() == (700, 10, 5000)


def test_switched_off_the_collector_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_DEFER_FULL_GC", "0")

    @flow
    def seen() -> tuple[int, int, int]:
        return gc.get_threshold()

    assert seen() == (700, 10, 10)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@task
def make_cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # unreachable once the task returns: only a collection frees it
    return weakref.ref(a)


def test_a_cycle_a_task_drops_is_still_freed_while_its_flow_runs() -> None:
    @flow(task_runner=ConcurrentTaskRunner(2))
    def churns() -> bool:
        ref = make_cycle.submit().result()
        assert ref() is not None
        for _ in range(50):  # allocations enough for young collections to run
            [_Node() for _ in range(1000)]
        return ref() is None

    assert churns() is True
