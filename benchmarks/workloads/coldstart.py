"""coldstart: what a user waits for before anything happens, each in a fresh interpreter.

* ``coldstart``: wall time of a one-task flow script (target < 0.5 s).
* ``coldstart-import``: ``python -c "import headwater"`` (target < 0.15 s), beside ``python -c
  "import concurrent.futures"``.
* ``coldstart-cli``: ``headwater --version`` and ``headwater runs ls`` on a small database
  (target < 0.3 s), beside ``python -c pass`` (the interpreter's own start).

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

# A user's interpreter caches bytecode; one started with PYTHONDONTWRITEBYTECODE=1 (some CI
# images, this sandbox) compiles every headwater module from source on each start, about
# 0.1 s more. Children here write and use the cache as a user's do; the warm-up trial fills it.


def _user_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env
from benchmarks.engines import RUNNER_CLASSES, require_baseline, require_headwater
from benchmarks.workload import Figure, Trial, TrialFactory, Workload

HELLO_THREADPOOL = (
    "import concurrent.futures as cf\n"
    "with cf.ThreadPoolExecutor() as pool:\n"
    "    print(pool.submit(lambda name: f'hello, {name}', 'world').result())\n"
)


RECORDING = "concurrent+recording"


def run(runner: str, n: int) -> Trial:
    require_headwater()  # fail soft with the import error here, not as a child's traceback
    args = [str(script("hello_headwater.py")), RUNNER_CLASSES[runner.removesuffix("+recording")]]
    env = _user_env()
    if runner == RECORDING:
        env = _user_env({"HEADWATER_RECORD": "1", "HEADWATER_HOME": scratch_home()})

    def trial() -> None:
        run_python(args, env=env)

    return trial


def baseline(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> None:
        run_python(["-c", HELLO_THREADPOOL], env=_user_env())

    return trial


WALL_SECONDS = Figure("seconds", "s wall", lambda raw, n: raw["seconds"], target=0.5)
IMPORT_SECONDS = Figure("seconds", "s wall", lambda raw, n: raw["seconds"], target=0.15)
CLI_SECONDS = Figure("seconds", "s wall", lambda raw, n: raw["seconds"], target=0.3)


def run_import(runner: str, n: int) -> Trial:
    require_headwater()

    def trial() -> None:
        run_python(["-c", "import headwater"], env=_user_env())

    return trial


def baseline_import(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> None:
        run_python(["-c", "import concurrent.futures"], env=_user_env())

    return trial


_CLI_ARGS = {"version": ["--version"], "runs-ls": ["runs", "ls"]}


def run_cli(runner: str, n: int) -> Trial:
    """``headwater`` itself, in a scratch home holding one recorded run (made untimed)."""
    require_headwater()
    env = _user_env({"HEADWATER_RECORD": "1", "HEADWATER_HOME": scratch_home()})
    env.pop("HEADWATER_API_URL", None)
    run_python([str(script("hello_headwater.py"))], env=env)
    args = ["-m", "headwater.cli", *_CLI_ARGS[runner]]

    def trial() -> None:
        run_python(args, env=env)

    return trial


def baseline_cli(engine: str, n: int) -> Trial:
    require_baseline(engine)

    def trial() -> None:
        run_python(["-c", "pass"], env=_user_env())

    return trial


def _fresh_interpreter(name: str, description: str, run: TrialFactory, baseline: TrialFactory,
                       figure: Figure, runners: dict[str, str], unit: str, order: int) -> Workload:
    """A workload whose every trial is one fresh interpreter (a median of several, as all
    start-up figures are cheap and noisy)."""
    return Workload(
        name=name, description=description, sizes={"tiny": 1, "quick": 1, "full": 1}, run=run,
        baseline=baseline, figures=(figure,), runners=runners, size_unit=unit,
        repeats={"tiny": 1, "quick": 3, "full": 7}, order=order,
    )


IMPORT = _fresh_interpreter(
    "coldstart-import", "`python -c 'import headwater'` in a fresh interpreter; target < 0.15 s",
    run_import, baseline_import, IMPORT_SECONDS, {"import": "threadpool"}, "script", 61,
)
CLI = _fresh_interpreter(
    "coldstart-cli", "`headwater --version` and `headwater runs ls` (small database); target < 0.3 s",
    run_cli, baseline_cli, CLI_SECONDS, {"version": "threadpool", "runs-ls": "threadpool"},
    "command", 62,
)

COLDSTART = _fresh_interpreter(
    "coldstart", "`python hello.py` (one-task flow) in a fresh interpreter; target < 0.5 s",
    run, baseline, WALL_SECONDS,
    {"sequential": "threadpool", "concurrent": "threadpool", RECORDING: "threadpool"}, "script", 60,
)

WORKLOADS = (COLDSTART, IMPORT, CLI)
