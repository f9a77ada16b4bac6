"""Times trials: a warm-up each, then repeats interleaved across engines, gc between repeats.

Interleaving (baseline, runner A, runner B, baseline, ...) rather than finishing one engine
before starting the next means a burst of background load on a shared machine hits every
engine of a repeat alike, so the ratios stay honest even when absolute figures wobble.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping

from benchmarks.workload import RawMeasurement, Trial

Outcome = list[dict[str, float]] | Exception


def run_interleaved(
    trials: Mapping[str, Trial],
    *,
    repeats: int,
    warmup: bool,
    on_step: Callable[[str], None] = lambda label: None,
) -> dict[str, Outcome]:
    """Each trial's measurements, or the exception that stopped it (its later steps skipped)."""
    outcomes: dict[str, Outcome] = {label: [] for label in trials}
    rounds = ([None] if warmup else []) + list(range(repeats))
    for round_index in rounds:
        for label, trial in trials.items():
            measurements = outcomes[label]
            if isinstance(measurements, Exception):
                on_step(label)  # keep the progress bar honest about skipped work
                continue
            if round_index is not None:
                # Collect now so one repeat's garbage is not charged to the next one.
                gc.collect()
            try:
                measured = time_once(trial)
            except Exception as exc:  # one broken engine must not stop the others
                outcomes[label] = exc
            else:
                # The warm-up pays for imports, thread start-up and caches; it is not counted.
                if round_index is not None:
                    measurements.append(measured)
            on_step(label)
    return outcomes


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
