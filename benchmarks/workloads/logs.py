"""logs: what capturing run logs into the state service costs, and a log storm (issue #12).

Every record a run's loggers write is shipped to the state service by
`headwater.runtime.log_capture.RunLogHandler`, one handler on the ``headwater`` logger
(``log_capture._handler``); taking it off that logger turns capture off and nothing else.
Both workloads record (capture needs a recorder to ship to), and keep the ``headwater`` logger
at INFO so every line is produced, with a ``logging.NullHandler`` as its only other handler:
the lines reach no console (whatever ``--show-logs`` says) and ``ensure_console_logging``
sees an application handler, so it adds none.

* ``logs-capture``: a flow submits N tasks on `ConcurrentTaskRunner`, each logging one line
  with ``get_run_logger().info``, then ``wait``s; recording into the suite's scratch
  ``HEADWATER_HOME`` (like ``cache``). Each trial runs it with capture on and with capture
  off (alternating which goes first) and, between them, the same flow of N no-op tasks that
  do not log (capture on, the default). Headline: (on − off) / noop, the capture cost as a
  fraction of a no-op task's time; target under 0.2 (20 %). The factory checks, untimed, that
  a capture-on run stores all N task lines; a trial fails if the recorder drops any log
  record. Baseline ``threadpool``: N raw pool tasks logging one line each through a plain
  logger (a ``NullHandler``, nothing to capture: on = off) beside N no-op pool tasks.
* ``logs-storm``: a fresh child (`scripts/logs_storm.py`, like ``memory``) whose one task
  prints N lines in a tight loop with ``log_prints=True``, recording on in a scratch home of
  its own; after it exits, `scripts/logs_read.py` reads the run's lines back through
  ``StateClient.read_logs`` and counts the storm's lines and the drop notices. Each trial also
  runs the same child with capture off (alternating order), so ``MiB over capture-off``
  (peak RSS on − off, one trial) carries the boundedness target: under 200 MiB. The
  ``buffer-1000`` runner sets ``HEADWATER_LOGS_MAX_BUFFERED=1000``, so the drop path (counted
  drops, notices) is exercised whatever the machine's speed; the default 100,000 may never
  fill. Baseline ``capture-off``: the capture-off child alone (it stores no line, so it
  drops none).
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.children import run_json, scratch_home, script
from benchmarks.engines import environment, require_baseline, require_headwater, threadpool
from benchmarks.workload import SECONDS, Figure, Trial, Workload
from benchmarks.workloads._shared import noop

CAPTURE_COST_TARGET = 0.2  # capture under 20 % of a no-op task's time (issue #12)
STORM_RSS_TARGET_MIB = 200.0  # a storm's peak RSS over the same child with capture off
MIB = 2**20
STORM_PREFIX = "storm line"
PAGE = 10_000  # the state service's largest page of log lines  # what the storm child prints, so its lines are told from others


def _recording_env() -> dict[str, str]:
    return {"HEADWATER_RECORD": "1", "HEADWATER_HOME": scratch_home()}


@contextmanager
def _run_logger(capture: bool) -> Iterator[None]:
    """The ``headwater`` logger at INFO with a NullHandler, plus the run-log handler when
    ``capture``; everything as it was afterwards (the suite's own handlers, capture on)."""
    from headwater.runtime import log_capture

    logger = logging.getLogger("headwater")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers = [logging.NullHandler()] + ([log_capture._handler] if capture else [])
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved[0], saved[2]
        logger.setLevel(saved[1])


# -- logs-capture ---------------------------------------------------------------------------


def _log_one(i: int) -> int:
    from headwater import get_run_logger

    get_run_logger().info("task %d logged a line", i)
    return i


def run_capture(runner: str, n: int) -> Trial:
    require_headwater()
    if runner != "concurrent":
        raise ValueError(f"no logs-capture runner named {runner!r} (has: concurrent)")
    from headwater import flow, get_run_context, task, wait
    from headwater.api import StateClient, recorder_target
    from headwater.api.process_recorders import get_recorder
    from headwater.runners import ConcurrentTaskRunner

    logging_task, noop_task = task(_log_one), task(noop)

    def logging_tasks(count: int) -> str:
        wait([logging_task.submit(i) for i in range(count)])
        return str(get_run_context().flow_run.id)

    def noop_tasks(count: int) -> str:
        wait([noop_task.submit(i) for i in range(count)])
        return str(get_run_context().flow_run.id)

    logging_flow = flow(task_runner=ConcurrentTaskRunner())(logging_tasks)
    noop_flow = flow(task_runner=ConcurrentTaskRunner())(noop_tasks)
    env = _recording_env()

    with environment(env), _run_logger(capture=True):  # untimed: every line is stored
        run_id = logging_flow(n)
        url, token, _ = recorder_target()
        client = StateClient(url, token=token)
        stored, after = 0, None
        while True:
            page = client.read_logs(run_id, after_seq=after, limit=PAGE)
            stored += sum(line.message.endswith(" logged a line") for line in page.lines)
            if len(page.lines) < PAGE:
                break
            after = page.next_seq
    if stored != n:
        raise RuntimeError(f"logs-capture: {stored} of {n} task lines were stored")
    turns = itertools.count()

    def trial() -> dict[str, float]:
        on_first = next(turns) % 2 == 0
        times: dict[str, float] = {}
        with environment(env):
            dropped = get_recorder().statistics().dropped_logs
            for side in ("on", "noop", "off") if on_first else ("off", "noop", "on"):
                gc.collect()  # the previous flow's futures are not this one's to collect
                with _run_logger(capture=side != "off"):
                    started = time.perf_counter()
                    (noop_flow if side == "noop" else logging_flow)(n)
                    times[side] = time.perf_counter() - started
            dropped = get_recorder().statistics().dropped_logs - dropped
        if dropped:
            raise RuntimeError(f"logs-capture: the recorder dropped {dropped} log records")
        return {"seconds": times["on"], "off_seconds": times["off"], "noop_seconds": times["noop"]}

    return trial


def baseline_capture(engine: str, n: int) -> Trial:
    require_baseline(engine)
    logger = logging.getLogger("benchmarks.logs.raw")
    logger.handlers = [logging.NullHandler()]
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def log_one(i: int) -> int:
        logger.info("task %d logged a line", i)
        return i

    def pool(fn: Callable[[int], object]) -> float:
        gc.collect()
        started = time.perf_counter()
        with threadpool() as executor:
            for future in [executor.submit(fn, i) for i in range(n)]:
                future.result()
        return time.perf_counter() - started

    turns = itertools.count()

    def trial() -> dict[str, float]:
        if next(turns) % 2 == 0:
            logged, idle = pool(log_one), pool(noop)
        else:
            idle, logged = pool(noop), pool(log_one)
        # Nothing to capture on the raw pool: on and off are the same run.
        return {"seconds": logged, "off_seconds": logged, "noop_seconds": idle}

    return trial


CAPTURE_FIGURES: tuple[Figure, ...] = (
    Figure(
        "capture_over_noop",
        "capture / no-op task",  # (on - off) / noop, from one trial
        lambda raw, n: (raw["seconds"] - raw["off_seconds"]) / raw["noop_seconds"],
        target=CAPTURE_COST_TARGET,
    ),
    Figure(
        "us_capture_per_line", "µs capture/line", lambda raw, n: (raw["seconds"] - raw["off_seconds"]) / n * 1e6
    ),
    Figure("us_per_task_on", "µs/logged task, capture on", lambda raw, n: raw["seconds"] / n * 1e6),
    Figure("us_per_task_off", "µs/logged task, capture off", lambda raw, n: raw["off_seconds"] / n * 1e6),
    Figure("us_per_noop_task", "µs/no-op task", lambda raw, n: raw["noop_seconds"] / n * 1e6),
    SECONDS,
)

# -- logs-storm -----------------------------------------------------------------------------

STORM_RUNNERS = {"default-buffer": None, "buffer-1000": "1000"}  # HEADWATER_LOGS_MAX_BUFFERED


def _storm_env(home: str, max_buffered: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update({"HEADWATER_RECORD": "1", "HEADWATER_HOME": home})
    if max_buffered is not None:
        env["HEADWATER_LOGS_MAX_BUFFERED"] = max_buffered
    return env


def _storm_child(n: int, capture: bool, max_buffered: str | None) -> dict[str, float]:
    """One storm child in a fresh scratch home; its report and what the home stored."""
    home = tempfile.mkdtemp(prefix="headwater-bench-storm-")
    try:
        env = _storm_env(home, max_buffered)
        child = run_json([str(script("logs_storm.py")), str(n), "on" if capture else "off"], env=env)
        started = time.perf_counter()
        stored = run_json([str(script("logs_read.py")), child["flow_run_id"], STORM_PREFIX], env=env)
        read_seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {
        "seconds": float(child["seconds"]),
        "peak_rss_bytes": float(child["peak_rss_bytes"]),
        "rss_before_bytes": float(child["rss_before_bytes"]),
        "recorder_dropped": float(child["dropped_logs"]),
        "stored_lines": float(stored["stored"]),
        # Nothing is offered to capture when it is off, so nothing is dropped.
        "dropped_lines": float(n - stored["stored"]) if capture else 0.0,
        "notices": float(stored["notices"]),
        "told_dropped": float(stored["told_dropped"]),
        "read_seconds": read_seconds,
    }


def run_storm(runner: str, n: int) -> Trial:
    require_headwater()  # fail soft with the import error here, not as a child's traceback
    if runner not in STORM_RUNNERS:
        raise ValueError(f"no logs-storm runner named {runner!r} (has: {', '.join(STORM_RUNNERS)})")
    max_buffered = STORM_RUNNERS[runner]
    turns = itertools.count()

    def trial() -> dict[str, float]:
        if next(turns) % 2 == 0:
            on = _storm_child(n, True, max_buffered)
            off = _storm_child(n, False, max_buffered)
        else:
            off = _storm_child(n, False, max_buffered)
            on = _storm_child(n, True, max_buffered)
        return {**on, "off_peak_rss_bytes": off["peak_rss_bytes"], "off_seconds": off["seconds"]}

    return trial


def baseline_storm(engine: str, n: int) -> Trial:
    require_baseline(engine, ("capture-off",))
    require_headwater()

    def trial() -> dict[str, float]:
        off = _storm_child(n, False, None)
        return {**off, "off_peak_rss_bytes": off["peak_rss_bytes"], "off_seconds": off["seconds"]}

    return trial


STORM_FIGURES: tuple[Figure, ...] = (
    Figure(
        "rss_over_off_mib",
        "MiB over capture-off",  # peak RSS with capture on - the same child off, one trial
        lambda raw, n: (raw["peak_rss_bytes"] - raw["off_peak_rss_bytes"]) / MIB,
        target=STORM_RSS_TARGET_MIB,
    ),
    Figure("peak_rss_mib", "MiB peak RSS", lambda raw, n: raw["peak_rss_bytes"] / MIB),
    # Higher is better, so the median and best of stored and dropped come from the same repeat
    # (their sum is N); against the capture-off child, which stores none, its ratio is 0.
    Figure("stored_lines", "lines stored", lambda raw, n: raw["stored_lines"], higher_is_better=True),
    Figure("dropped_lines", "lines dropped", lambda raw, n: raw["dropped_lines"]),
    Figure("told_dropped", "dropped (notices say)", lambda raw, n: raw["told_dropped"]),
    Figure("notices", "drop notices", lambda raw, n: raw["notices"], in_table=False),
    Figure("recorder_dropped", "dropped_logs", lambda raw, n: raw["recorder_dropped"], in_table=False),
    Figure("storm_s", "s storm", lambda raw, n: raw["seconds"]),
    Figure("off_s", "s storm, capture off", lambda raw, n: raw["off_seconds"], in_table=False),
    Figure("read_s", "s to read back", lambda raw, n: raw["read_seconds"], in_table=False),
    Figure(
        "growth_mib", "MiB grown in the storm",
        lambda raw, n: (raw["peak_rss_bytes"] - raw["rss_before_bytes"]) / MIB, in_table=False,
    ),  # fmt: skip
)

WORKLOADS = (
    Workload(
        name="logs-capture",
        description="N tasks each logging a line, capture on vs off vs no-op tasks; goal < 0.2",
        sizes={"tiny": 50, "quick": 2_000, "full": 10_000},
        run=run_capture,
        baseline=baseline_capture,
        figures=CAPTURE_FIGURES,
        runners={"concurrent": "threadpool"},
        env={},  # each trial records into the scratch home itself
        repeats={"quick": 9, "full": 7},  # a difference of two noisy times: more repeats
        order=99,
    ),
    Workload(
        name="logs-storm",
        description="a fresh process whose task prints N lines (log_prints), recorded; peak RSS",
        sizes={"tiny": 5_000, "quick": 200_000, "full": 1_000_000},
        run=run_storm,
        baseline=baseline_storm,
        figures=STORM_FIGURES,
        runners={"default-buffer": "capture-off", "buffer-1000": "capture-off"},
        size_unit="lines",
        env={},  # each child records into a scratch home of its own
        warmup=False,  # every trial is fresh processes already
        repeats={"tiny": 1, "quick": 2, "full": 2},
        order=99,
    ),
)
