"""The pure ready-set graph: events in, instructions out, no threads."""

from __future__ import annotations

import uuid

import pytest

from headwater.runtime.graph import Dispatch, Finished, GraphState, Submitted, Watch

A, B, C, D = (uuid.UUID(int=i) for i in range(1, 5))


def test_a_run_with_nothing_to_wait_for_dispatches_at_once() -> None:
    assert GraphState().handle(Submitted(A, ())) == [Dispatch(A)]


def test_an_upstream_is_watched_once_however_many_runs_wait_on_it() -> None:
    graph = GraphState()
    assert graph.handle(Submitted(B, (A,))) == [Watch(A)]
    assert graph.handle(Submitted(C, (A,))) == []
    assert graph.handle(Finished(A)) == [Dispatch(B), Dispatch(C)]
    assert graph.statistics().waiting_runs == 0


def test_a_run_waits_for_all_its_distinct_upstreams() -> None:
    graph = GraphState()
    assert graph.handle(Submitted(C, (A, B, A))) == [Watch(A), Watch(B)]
    assert graph.handle(Finished(A)) == []
    assert graph.handle(Finished(B)) == [Dispatch(C)]


def test_finished_unknown_runs_are_ignored_and_state_is_released() -> None:
    graph = GraphState()
    assert graph.handle(Finished(D)) == []
    graph.handle(Submitted(B, (A,)))
    graph.handle(Finished(A))
    stats = graph.statistics()
    assert (stats.waiting_runs, stats.watched_upstreams) == (0, 0)


def test_submitting_a_run_twice_is_an_error() -> None:
    graph = GraphState()
    graph.handle(Submitted(B, (A,)))
    with pytest.raises(ValueError, match="twice"):
        graph.handle(Submitted(B, (A,)))
