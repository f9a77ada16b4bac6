"""The workload interface: what one benchmark declares, and the figures derived from its trials.

A workload is a frozen description (`Workload`) plus two trial factories:

* ``run(runner, n)`` builds a zero-argument *trial* that does the work once through headwater
  on the named runner (a key of ``Workload.runners``);
* ``baseline(engine, n)`` builds the same work on the raw engine underneath (a value of
  ``Workload.runners``, e.g. ``"threadpool"`` for ``concurrent.futures.ThreadPoolExecutor``).

The harness calls a trial once to warm up, then ``repeats`` times, timing each call with
``time.perf_counter``. A trial returns ``None`` (the harness's elapsed time is the measurement)
or a mapping of raw measurements it took itself (e.g. peak RSS reported by a child process);
``"seconds"`` is filled in from the harness's clock when the trial does not report it.

Each `Figure` turns one raw measurement and the size ``n`` into a number a reader cares about
(tasks/s, µs per task, MiB). Every figure is summarised over repeats and compared with the
same figure of the baseline measured in the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

RawMeasurement = Mapping[str, float]
Trial = Callable[[], RawMeasurement | None]
TrialFactory = Callable[[str, int], Trial]


@dataclass(frozen=True, slots=True)
class Figure:
    """One number derived from a trial's raw measurements and the workload size ``n``."""

    key: str  # stable JSON key, e.g. "tasks_per_s"
    unit: str  # human label for the table, e.g. "tasks/s"
    compute: Callable[[RawMeasurement, int], float]
    higher_is_better: bool = False
    in_table: bool = True  # every figure goes to JSON; the table shows the telling ones
    target: float | None = None  # a goal the project set for this figure, shown as pass/miss
    # A goal for the overhead ratio instead (e.g. 1.5: within 1.5x of the raw engine).
    ratio_target: float | None = None

    def meets_target(self, value: float) -> bool | None:
        """Whether ``value`` reaches the target, or None when there is no target."""
        if self.target is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target

    def meets_ratio_target(self, ratio: float) -> bool | None:
        """Whether an overhead ratio is within the ratio target, or None when there is none."""
        return None if self.ratio_target is None else ratio <= self.ratio_target


def _seconds(raw: RawMeasurement, n: int) -> float:
    return raw["seconds"]


SECONDS = Figure("seconds", "s", _seconds, in_table=False)
TASKS_PER_S = Figure(
    "tasks_per_s", "tasks/s", lambda raw, n: n / raw["seconds"], higher_is_better=True
)
US_PER_TASK = Figure("us_per_task", "µs/task", lambda raw, n: raw["seconds"] / n * 1e6)
MS_PER_TASK = Figure("ms_per_task", "ms/task", lambda raw, n: raw["seconds"] / n * 1e3)

# Figure sets most workloads pick from; the first figure of a set is the headline.
THROUGHPUT: tuple[Figure, ...] = (TASKS_PER_S, US_PER_TASK, SECONDS)
LATENCY: tuple[Figure, ...] = (MS_PER_TASK, SECONDS)

DEFAULT_RUNNERS: Mapping[str, str] = MappingProxyType(
    {"sequential": "threadpool", "concurrent": "threadpool"}
)
# The core workloads measure the in-memory runtime alone, without the state service.
NO_RECORDING: Mapping[str, str] = MappingProxyType({"HEADWATER_RECORD": "0"})
MODES = ("tiny", "quick", "full")


@dataclass(frozen=True)
class Workload:
    """A named benchmark: the same work through headwater and through a raw engine."""

    name: str
    description: str
    sizes: Mapping[str, int]  # "quick" and "full" required; "tiny" (tests) defaults to quick
    run: TrialFactory  # (headwater runner name, n) -> trial
    baseline: TrialFactory  # (baseline engine name, n) -> trial
    figures: tuple[Figure, ...] = THROUGHPUT
    runners: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_RUNNERS))
    size_unit: str = "tasks"
    env: Mapping[str, str] = field(default_factory=lambda: dict(NO_RECORDING))
    warmup: bool = True  # False for trials that start a fresh process and are costly
    repeats: Mapping[str, int] = field(default_factory=dict)  # per-mode override
    order: int = 100  # position in the suite; the built-ins use 10, 20, ...

    def __post_init__(self) -> None:
        missing = {"quick", "full"} - set(self.sizes)
        if missing:
            raise ValueError(f"workload {self.name!r}: sizes lacks {sorted(missing)}")
        if not self.figures:
            raise ValueError(f"workload {self.name!r} declares no figures")

    def size(self, mode: str) -> int:
        """The workload size for a mode (``tiny`` falls back to ``quick``)."""
        if mode == "tiny" and "tiny" not in self.sizes:
            return self.sizes["quick"]
        return self.sizes[mode]

    def baselines(self) -> list[str]:
        """Distinct baseline engines, each measured once however many runners share it."""
        return list(dict.fromkeys(self.runners.values()))
