"""Runs a trial repeatedly and records raw measurements: warm-up first, gc between repeats."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping

from benchmarks.workload import RawMeasurement, Trial


def run_trials(
    trial: Trial, *, repeats: int, warmup: bool, on_step: Callable[[], None] = lambda: None
) -> list[dict[str, float]]:
    """Measure ``trial`` ``repeats`` times after an optional, discarded warm-up call."""
    if warmup:
        # The first call pays for imports, thread start-up and caches; a user's steady state
        # does not, so it is not counted.
        time_once(trial)
        on_step()
    measurements = []
    for _ in range(repeats):
        # Collect now so one repeat's garbage is not charged to the next one.
        gc.collect()
        measurements.append(time_once(trial))
        on_step()
    return measurements


def time_once(trial: Trial) -> dict[str, float]:
    """Call ``trial`` once; its own measurements win, the wall clock fills in ``seconds``."""
    started = time.perf_counter()
    reported: RawMeasurement | None = trial()
    elapsed = time.perf_counter() - started
    if reported is not None and not isinstance(reported, Mapping):
        # Most likely `lambda: my_flow(n)` leaking the flow's return value.
        raise TypeError(
            f"a trial must return None or a mapping of raw measurements, not {type(reported).__name__}"
        )
    measurement = dict(reported or {})
    measurement.setdefault("seconds", elapsed)
    return measurement
