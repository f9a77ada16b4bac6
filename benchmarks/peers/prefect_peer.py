"""The headwater workloads through Prefect 3's public API, with Prefect's default configuration.

Run by `python -m benchmarks --peer-python PATH`, in that interpreter (which must have Prefect;
the suite never installs it). Standalone: stdlib and prefect only, so it does not need headwater.

    python prefect_peer.py --spec '{"workloads": {"submit": {"n": 2000, "repeats": 2}}}' --out r.json

Flows use no ``task_runner`` argument, so they run on Prefect's default runner
(``ThreadPoolTaskRunner``) and default settings (local ephemeral API, default cache policy,
default logging): the experience of a user who installs Prefect and writes these flows.
Output: ``{"peer": "prefect", "versions": {...}, "workloads": {name: {"n", "measurements",
"error"}}}`` where each measurement is ``{"seconds": ...}`` or the child's RSS figures.
"""

# Checked where Prefect may be absent: its decorators then look untyped to mypy.
# mypy: disable-error-code="import-not-found, untyped-decorator, no-any-return, unused-ignore"

from __future__ import annotations

import argparse
import functools
import gc
import json
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.futures import wait

# Run as a script under another interpreter, from this checkout: the RSS readers are shared
# with the memory scripts in ../scripts.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from _rss import current_rss_bytes, peak_rss_bytes  # type: ignore[import-not-found, unused-ignore]  # noqa: E402


@task
def noop(x: Any = None) -> Any:
    return x


@task
def count(items: list[Any]) -> int:
    return len(items)


@task
def make_small(i: int) -> dict[str, Any]:
    return {"index": i, "name": f"item-{i}", "tags": ["a", "b"], "value": i * 0.5}


_LARGE: dict[int, bytearray] = {}


@task
def make_large(mebibytes: int) -> bytearray:
    # Allocated once per process (during warm-up), as headwater's data-large does, so the
    # figure is the hand-off and not the allocator.
    if mebibytes not in _LARGE:
        _LARGE[mebibytes] = bytearray(mebibytes * 2**20)
    return _LARGE[mebibytes]


@task
def size_of(obj: Any) -> int:
    return len(obj)


@flow
def submit_flow(n: int) -> None:
    wait([noop.submit(i) for i in range(n)])


@flow
def map_flow(n: int) -> None:
    noop.map(range(n)).result()


@flow
def chain_flow(n: int) -> None:
    previous: Any = None
    for _ in range(n):
        previous = noop.submit(previous)
    previous.result()


@flow
def fanout_flow(n: int) -> None:
    count.submit([noop.submit(i) for i in range(n)]).result()


@flow
def data_small_flow(n: int) -> None:
    wait([size_of.submit(make_small.submit(i)) for i in range(n)])


@flow
def data_large_flow(n: int) -> None:
    size_of.submit(make_large.submit(n)).result()


@flow
def hello_flow() -> str:
    return noop.submit("hello, world").result()


IN_PROCESS: dict[str, Callable[[int], None]] = {
    "submit": submit_flow,
    "map": map_flow,
    "chain": chain_flow,
    "fanout": fanout_flow,
    "data-small": data_small_flow,
    "data-large": data_large_flow,
}


def time_in_process(flow_fn: Callable[[int], None], n: int) -> dict[str, float]:
    started = time.perf_counter()
    flow_fn(n)
    return {"seconds": time.perf_counter() - started}


def time_coldstart(n: int) -> dict[str, float]:
    started = time.perf_counter()
    run_child(["coldstart"])
    return {"seconds": time.perf_counter() - started}


def measure_memory(n: int) -> dict[str, float]:
    # The last JSON-looking line: Prefect may log after the child's report.
    reports = [line for line in run_child(["memory", str(n)]).splitlines() if line.startswith("{")]
    return json.loads(reports[-1])


def run_child(args: list[str]) -> str:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr.strip().splitlines()[-1:] or "child failed")
    return completed.stdout


def child(args: list[str]) -> None:
    """Work done in a fresh interpreter: cold start, or peak RSS of N tasks."""
    if args[0] == "coldstart":
        print(hello_flow())
        return
    n = int(args[1])
    before = current_rss_bytes()
    submit_flow(n)
    print(json.dumps({"rss_before_bytes": before, "peak_rss_bytes": peak_rss_bytes()}))


def measure(name: str, n: int, repeats: int, warmup: bool) -> dict[str, Any]:
    one: Callable[[int], dict[str, float]]
    if name in IN_PROCESS:
        one = functools.partial(time_in_process, IN_PROCESS[name])
    elif name == "coldstart":
        one = time_coldstart
    elif name == "memory":
        one, warmup = measure_memory, False
    else:
        return {"n": n, "measurements": [], "error": f"no Prefect version of {name!r}"}
    try:
        if warmup:
            one(n)
        measurements = []
        for _ in range(repeats):
            gc.collect()
            measurements.append(one(n))
        return {"n": n, "measurements": measurements, "error": None}
    except Exception as exc:
        traceback.print_exc()
        return {"n": n, "measurements": [], "error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="JSON: {'workloads': {name: {n, repeats, warmup}}}")
    parser.add_argument("--out", help="where to write the JSON result")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.child)
        return
    import prefect

    spec = json.loads(options.spec)
    results = {
        name: measure(name, item["n"], item.get("repeats", 3), item.get("warmup", True))
        for name, item in spec["workloads"].items()
    }
    document = {
        "peer": "prefect",
        "versions": {"prefect": prefect.__version__, "python": platform.python_version()},
        "workloads": results,
    }
    with open(options.out, "w") as out:
        json.dump(document, out)


if __name__ == "__main__":
    main()
