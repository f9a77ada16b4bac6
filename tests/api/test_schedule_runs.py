"""Schedules in the service's database (`schedule_runs.py`), on real SQLite, with the clock
passed in: ticks become exactly the expected runs, racing loops and redeploys make no
duplicates, catch-up and overlap policies, Late marking."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from headwater.api.deploy_store import DeploymentSpec, DeployStore
from headwater.api.schedules import Cron, Interval, ticks
from headwater.api.settings import DB_FILENAME
from headwater.api.storage import Storage

T0 = datetime(2026, 12, 7, 9, 0, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def stores(home: Path) -> Any:
    storage = Storage(home / DB_FILENAME)  # creates the schema; and reads runs back
    made = [DeployStore(home / DB_FILENAME, beside_storage=True) for _ in range(2)]
    yield storage, made
    for store in made:
        store.close()
    storage.close()


def _deploy(store: DeployStore, *schedules: Any, name: str = "f/d", now: float = T0) -> Any:
    spec = DeploymentSpec(name, "f", "flows.py:f", {"kind": "local", "path": "/tmp"}, {}, {},
                          schedules=tuple(s.to_dict() for s in schedules))  # fmt: skip
    return store.upsert_deployment(spec, now=now)


def _runs(store: DeployStore) -> list[tuple[float, str, str]]:
    rows = store._read(
        "SELECT scheduled_time, state_type, state_name FROM flow_runs WHERE schedule_id IS NOT NULL ORDER BY scheduled_time"
    )
    return [(float(t), s, n) for t, s, n in rows]


def _expected(schedule: Any, after: float, until: float) -> list[float]:
    return [t.timestamp() for t in ticks(schedule, datetime.fromtimestamp(after, timezone.utc), datetime.fromtimestamp(until, timezone.utc))]


def test_ticks_become_exactly_the_expected_runs_over_a_window(stores: Any) -> None:
    _, (store, _) = stores
    every_minute = Interval(timedelta(minutes=1))
    _deploy(store, every_minute, now=T0)
    steps = range(0, 601, 7)  # a loop waking every 7 s for 10 minutes
    for step in steps:
        store.scheduler_pass(now=T0 + step)
    made = [t for t, _, _ in _runs(store)]
    assert made == _expected(every_minute, T0, T0 + steps[-1] + 60)  # up to the horizon, each once


def test_two_scheduler_loops_racing_make_no_duplicates(stores: Any) -> None:
    _, (first, second) = stores
    cron = Cron("* * * * *")
    _deploy(first, cron, now=T0)

    def loop(store: DeployStore) -> None:
        for step in range(0, 1200, 5):
            store.scheduler_pass(now=T0 + step)

    threads = [threading.Thread(target=loop, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    made = [t for t, _, _ in _runs(first)]
    assert made == _expected(cron, T0, T0 + 1195 + 60) and len(made) == len(set(made))


def test_a_redeploy_neither_duplicates_nor_loses_runs(stores: Any) -> None:
    _, (store, _) = stores
    _deploy(store, Cron("* * * * *"), now=T0)
    store.scheduler_pass(now=T0)
    before = _runs(store)
    assert len(before) == 1
    _deploy(store, Cron("* * * * *", slug="renamed", overlap="allow_all"), now=T0 + 1)  # same content
    store.scheduler_pass(now=T0 + 2)
    assert _runs(store) == before  # kept, not duplicated
    _deploy(store, Cron("*/2 * * * *"), now=T0 + 3)  # changed: the old one's waiting runs are superseded, visibly
    store.scheduler_pass(now=T0 + 100)
    runs = _runs(store)
    superseded = [r for r in runs if r[2] == "Superseded"]
    assert len(superseded) == 1 and superseded[0][0] == before[0][0] and superseded[0][1] == "CANCELLED"
    live = [t for t, state, _ in runs if state == "SCHEDULED"]
    assert live == _expected(Cron("*/2 * * * *"), T0 + 3, T0 + 100 + 60) and live


@pytest.mark.parametrize(("catchup", "lateness", "expected"), [
    ("all", None, 9), ("latest", None, 1), ("skip", None, 0), ("all", timedelta(minutes=3), 3),
])  # fmt: skip
def test_after_downtime_the_catch_up_policy_decides_which_missed_ticks_run(
    stores: Any, catchup: str, lateness: timedelta | None, expected: int,
) -> None:
    _, (store, _) = stores
    every_minute = Interval(timedelta(minutes=1), catchup=catchup, max_lateness=lateness)
    _deploy(store, every_minute, now=T0)
    store.scheduler_pass(now=T0 + 1)  # made the run of T0+60 ahead; then nothing runs for 10 minutes
    store.scheduler_pass(now=T0 + 601)
    missed = [t for t, _, _ in _runs(store) if T0 + 61 < t <= T0 + 601]
    assert len(missed) == expected


def _going_run(store: DeployStore, storage: Storage) -> Any:
    """A run of the deployment started by a worker and still going (PENDING)."""
    run = store.create_run("f/d", name="manual", now=T0)
    store.register_worker("w", pool=None, deployments=[store.read_deployment("f/d").id], now=T0)
    (claim,) = store.assign("w", now=T0 + 1)
    store.start(run.flow_run_id, claim.token, "w", now=T0 + 1)
    return run.flow_run_id


@pytest.mark.parametrize("policy", ["skip", "buffer_one", "allow_all", "cancel_other"])
def test_overlap_policies_when_the_previous_run_is_still_going(stores: Any, policy: str) -> None:
    storage, (store, _) = stores
    _deploy(store, Interval(timedelta(minutes=1), overlap=policy), now=T0)
    going = _going_run(store, storage)
    store.scheduler_pass(now=T0 + 2)
    store.scheduler_pass(now=T0 + 150)  # two ticks due now: T0+60 and T0+120
    taken = store.assign("w", most=5, now=T0 + 150)
    states = {n for _, _, n in _runs(store)}
    if policy == "skip":
        assert taken == [] and "Skipped" in states
    elif policy == "buffer_one":
        assert taken == [] and [n for _, _, n in _runs(store)].count("Skipped") == 1  # one waits, the later skipped
    elif policy == "allow_all":
        assert len(taken) == 2
    else:
        assert len(taken) == 2 and storage.read_flow_run(going).state_type == "CANCELLING"
        assert store.overlap_cancels


def test_a_run_not_started_in_time_is_marked_late(stores: Any) -> None:
    storage, (store, _) = stores
    _deploy(store, Interval(timedelta(minutes=1)), now=T0)
    store.scheduler_pass(now=T0 + 1)
    assert store.scheduler_pass(now=T0 + 60 + 10)[1] == 0  # 10 s late: within the grace
    assert store.scheduler_pass(now=T0 + 60 + 16)[1] == 1
    late = [r for r in _runs(store) if r[2] == "Late"]
    assert late and late[0][1] == "SCHEDULED"
