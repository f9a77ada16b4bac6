"""recording: N no-op tasks via `.submit` with recording on, against the same with it off.

What recording to the state service costs the runtime: the same flow, in the same suite run,
once with recording on (the default a user gets: the embedded state service in the process,
every run and state committed to SQLite with ``synchronous=FULL``) and once with
``HEADWATER_RECORD=0``. The ratio is the recording cost; the project's goal is under 2x.

Each trial is a fresh child process, because a process that has started recording keeps
recording: the child runs a small warm-up flow (imports, the embedded server, the first
database write), then times one flow of N tasks, final flush included (a flow returns only
once its records are durable). Recording children share one scratch ``HEADWATER_HOME`` per
suite run, so the database grows across repeats as a user's does.
"""

from __future__ import annotations

import json
import os

from benchmarks.children import ChildFailed, run_python, scratch_home
from benchmarks.engines import RUNNER_CLASSES, require_headwater
from benchmarks.workload import THROUGHPUT, Trial, Workload

CHILD = """
import json, logging, sys, time
from headwater import flow, runners, task, wait

logging.getLogger("headwater").setLevel(logging.WARNING)

@task
def noop(x=None):
    return x

@flow(task_runner=getattr(runners, sys.argv[1])())
def submit_many(count):
    wait([noop.submit(i) for i in range(count)])

n = int(sys.argv[2])
submit_many(min(n, 200))  # warm-up, untimed
start = time.perf_counter()
submit_many(n)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

OFF = "-off"


def _trial(runner: str, n: int, *, record: bool) -> Trial:
    require_headwater()  # fail soft with the import error here, not as a child's traceback
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_API_")}
    env.update({"HEADWATER_RECORD": "1" if record else "0", "HEADWATER_HOME": scratch_home()})
    args = ["-c", CHILD, RUNNER_CLASSES[runner], str(n)]

    def trial() -> dict[str, float]:
        reports = [line for line in run_python(args, env=env).splitlines() if line.startswith("{")]
        if not reports:
            raise ChildFailed("recording child printed no JSON report")
        return {"seconds": float(json.loads(reports[-1])["seconds"])}

    return trial


def run(runner: str, n: int) -> Trial:
    return _trial(runner, n, record=True)


def baseline(engine: str, n: int) -> Trial:
    runner = engine.removesuffix(OFF)
    if runner not in RUNNER_CLASSES or not engine.endswith(OFF):
        raise ValueError(f"no {engine!r} baseline for recording (has: sequential-off, concurrent-off)")
    return _trial(runner, n, record=False)


WORKLOAD = Workload(
    name="recording",
    description="N no-op tasks via .submit, recording on vs off (HEADWATER_RECORD=0); goal < 2x",
    sizes={"tiny": 50, "quick": 2_000, "full": 10_000},
    run=run,
    baseline=baseline,
    figures=THROUGHPUT,
    runners={"sequential": "sequential" + OFF, "concurrent": "concurrent" + OFF},
    env={},  # each child sets HEADWATER_RECORD itself
    warmup=False,  # every trial is a fresh process that warms itself up
    repeats={"tiny": 1, "quick": 5, "full": 5},
    order=65,
)
