"""coldstart: wall time of a one-task flow script in a fresh interpreter (target < 0.75 s).

Unlike the in-process workloads, this one counts interpreter start and every import: it is
what a user waits for when running ``python hello.py``. The baseline is ``python -c`` running
one task on a raw ThreadPoolExecutor.

``sequential`` and ``concurrent`` run with ``HEADWATER_RECORD=0`` like the other workloads;
``concurrent+recording`` is the default configuration a user gets, recording to the embedded
state service (in a scratch ``HEADWATER_HOME``), so the target is checked where it matters.
"""

from __future__ import annotations

import os

from benchmarks.children import run_python, scratch_home, script
from benchmarks.engines import RUNNER_CLASSES, require_baseline, require_headwater
from benchmarks.workload import Figure, Trial, Workload

HELLO_THREADPOOL = (
    "import concurrent.futures as cf\n"
    "with cf.ThreadPoolExecutor() as pool:\n"
    "    print(pool.submit(lambda name: f'hello, {name}', 'world').result())\n"
)


RECORDING = "concurrent+recording"


def run(runner: str, n: int) -> Trial:
    require_headwater()  # fail soft with the import error here, not as a child's traceback
    args = [str(script("hello_headwater.py")), RUNNER_CLASSES[runner.removesuffix("+recording")]]
    env = None
    if runner == RECORDING:
        env = {**os.environ, "HEADWATER_RECORD": "1", "HEADWATER_HOME": scratch_home()}

    def trial() -> None:
        run_python(args, env=env)

    return trial


def baseline(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> None:
        run_python(["-c", HELLO_THREADPOOL])

    return trial


WALL_SECONDS = Figure("seconds", "s wall", lambda raw, n: raw["seconds"], target=0.75)

WORKLOAD = Workload(
    name="coldstart",
    description="`python hello.py` (one-task flow) in a fresh interpreter; target < 0.75 s",
    sizes={"tiny": 1, "quick": 1, "full": 1},
    run=run,
    baseline=baseline,
    figures=(WALL_SECONDS,),
    runners={"sequential": "threadpool", "concurrent": "threadpool", RECORDING: "threadpool"},
    size_unit="script",
    repeats={"tiny": 1, "quick": 3, "full": 7},  # cheap and noisy: take a median of several
    order=60,
)
