"""Workloads: one module each, discovered with pkgutil. Adding one is adding one file.

A module in this package registers itself by exporting ``WORKLOAD`` (one `Workload`) or
``WORKLOADS`` (a tuple of them, for a family such as ``data-small``/``data-large``, selected
together as ``data``). Modules whose name starts with ``_`` are helpers and are not scanned.

    # benchmarks/workloads/example.py
    from benchmarks.engines import require_baseline, require_headwater, task_runner, threadpool
    from benchmarks.workload import THROUGHPUT, Trial, Workload
    from benchmarks.workloads._shared import noop

    def run(runner: str, n: int) -> Trial:           # runner: a key of Workload.runners
        require_headwater()                          # HeadwaterUnavailable -> an error row
        from headwater import flow, task, wait      # lazily: the suite still runs baselines without it
        noop_task = task(noop)

        @flow(task_runner=task_runner(runner))
        def example(count: int) -> None:
            wait([noop_task.submit(i) for i in range(count)])

        def trial() -> None:                         # timed, called repeatedly; returns None
            example(n)
        return trial

    def baseline(engine: str, n: int) -> Trial:      # engine: a value of Workload.runners
        require_baseline(engine)                     # only "threadpool" here
        def trial() -> None:
            with threadpool() as pool:
                for future in [pool.submit(noop, i) for i in range(n)]:
                    future.result()
        return trial

    WORKLOAD = Workload(
        name="example",
        description="what one trial does, in one line",
        sizes={"tiny": 20, "quick": 2_000, "full": 10_000},   # N per mode
        run=run,
        baseline=baseline,
        figures=THROUGHPUT,                          # headline first: tasks/s, µs/task, seconds
    )

The contract:

* ``run(runner, n)`` and ``baseline(engine, n)`` do their setup (decorating, building flows)
  and return a zero-argument *trial*. Setup is not timed; the trial is: once to warm up, then
  ``repeats`` times with ``gc.collect()`` in between. Include flow start and finish (and the
  executor's start and shutdown on the baseline side) in the trial.
* A trial returns ``None`` (the harness's ``perf_counter`` time is its ``seconds``) or a dict of
  raw measurements it took itself, e.g. ``{"peak_rss_bytes": ...}`` from a child process.
* ``figures`` turn raw measurements and ``n`` into reported numbers (`benchmarks.workload.Figure`).
  Each is summarised (min, median, max, best over repeats) and compared with the same figure
  of the baseline: ratio = overhead factor, > 1 means headwater is slower or bigger.
* ``runners`` maps each headwater runner the workload runs on to the baseline engine it is
  compared with; the default is ``{"sequential": "threadpool", "concurrent": "threadpool"}``.
  When the Dask and Ray runners land, a workload adds ``{"dask": "dask", "ray": "ray"}`` and its
  ``baseline`` learns the raw ``client.submit`` / ``remote`` versions
  (`benchmarks.engines.RUNNER_CLASSES` learns the runner classes). The names are free-form:
  a state-service workload may use ``{"batched": "raw-sqlite", "unbatched": "raw-sqlite"}``
  and ignore `task_runner` entirely.
* ``env`` is applied around the whole workload; the default ``{"HEADWATER_RECORD": "0"}``
  measures the in-memory runtime without the state service. Set ``env={}`` (or
  ``{"HEADWATER_RECORD": "1"}``) to measure with recording. Once the runtime has started
  recording in a process it keeps recording there (it checks the variable at each flow run
  until then), so a recording workload must run after the non-recording ones (a higher
  ``order``) or, better, run its flows in a child process
  (`benchmarks.children`, as ``coldstart``'s ``concurrent+recording`` runner does, with
  `scratch_home()` as ``HEADWATER_HOME`` so benchmarks never write to ``~/.headwater``).
* ``warmup=False`` for trials that are already fresh processes; ``repeats={"quick": 3}``
  overrides the default repeats per mode; ``order`` places the workload in the suite.
* Never let a workload install anything or need numpy. Shared task bodies go in `_shared.py`,
  at module level, so process-based runners can pickle them.
"""
