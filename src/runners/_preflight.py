"""Running a flow's `WorkerCheck` on every worker of a cluster, in one round trip.

The runner does not know what is checked (the runtime builds the check, see
`runtime/worker_check.py`); it knows where its workers are and how to reach all of them at
once:

- Dask: `Client.run` on every worker the scheduler knows now, out of band (no task, no slot
  taken from task runs). The worker runs `run_on_dask_worker` in its event loop, which hands
  the check to a thread so the worker keeps answering its scheduler while the check waits
  for the state service.
- Ray: one zero-CPU task per alive node, pinned there (`NodeAffinitySchedulingStrategy`,
  `soft=False`), so a busy cluster does not hold it back behind task runs.

Each worker's answer is None (fit), a problem the check found, or an exception raised while
loading or running it there: a worker without headwater cannot unpickle the check (Dask
returns the `ModuleNotFoundError`, Ray a `RayTaskError` around it), and is named as such.
Workers that join after this (an adaptive cluster scaling up; one with no workers at start has
nothing to check and passes at once) are not checked: their first task run meets the same
failure (the task cannot be unpickled, or its engine cannot reach the state service) and ends
CRASHED with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ..errors import PreflightFailed
from .base import WorkerCheck

#: Seconds a Ray node gets on top of the check's own timeout: it may have to start a worker.
RAY_STARTUP_SLACK = 30.0
_MOST_NAMED = 5


def check_here(check: WorkerCheck) -> str | None:
    """Run `check` in this process; what it raises (it should not) becomes its problem."""
    try:
        return check()
    except Exception as exc:
        return f"headwater's preflight check failed there: {type(exc).__name__}: {exc}"


async def run_on_dask_worker(check: WorkerCheck) -> str | None:
    """On a Dask worker, in its event loop (`Client.run`): the check, in a thread."""
    return await asyncio.get_running_loop().run_in_executor(None, check_here, check)


def check_dask_workers(client: Any, check: WorkerCheck) -> None:
    """Run `check` on every current worker of `client`'s cluster; raise `PreflightFailed`."""
    answers = client.run(run_on_dask_worker, check, on_error="return")
    raise_unfit({f"worker {address}": answer for address, answer in answers.items()}, "Dask worker")


_ray_check: Any = None


def check_ray_nodes(check: WorkerCheck) -> None:
    """Run `check` once on every alive node of the Ray cluster; raise `PreflightFailed`."""
    import ray  # here, not at the top: the Dask runner imports this module without Ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    global _ray_check
    if _ray_check is None:
        _ray_check = ray.remote(num_cpus=0, max_retries=0, retry_exceptions=False)(check_here)
    pending: dict[Any, str] = {}
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if node.get("Alive"):
            pin = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
            ref = _ray_check.options(scheduling_strategy=pin).remote(check)
            pending[ref] = f"node {node['NodeID'][:12]} at {node.get('NodeManagerAddress', '?')}"
    if not pending:
        return
    timeout = check.timeout + RAY_STARTUP_SLACK
    ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout)
    answers: dict[str, object] = {}
    for ref in ready:
        try:
            answers[pending[ref]] = ray.get(ref)
        except Exception as exc:  # it could not load or run the check there
            answers[pending[ref]] = exc
    for ref in late:
        ray.cancel(ref, force=True)
        answers[pending[ref]] = f"did not answer headwater's preflight check within {timeout:g} s"
    raise_unfit(answers, "Ray node")


def raise_unfit(answers: Mapping[str, object], kind: str) -> None:
    """Raise `PreflightFailed` naming each worker whose answer is not None, if any."""
    problems = {worker: _problem(answer) for worker, answer in answers.items() if answer is not None}
    if not problems:
        return
    named = [f"{worker}: {problem}" for worker, problem in sorted(problems.items())]
    more = f"; and {len(named) - _MOST_NAMED} more" if len(named) > _MOST_NAMED else ""
    raise PreflightFailed(
        f"{len(problems)} of {len(answers)} {kind}s cannot run this flow's task runs, so none "
        f"was started: " + "; ".join(named[:_MOST_NAMED]) + more,
        problems,
    )


def _problem(answer: object) -> str:
    if isinstance(answer, str):
        return answer
    if isinstance(answer, BaseException):
        text = str(answer)
        if "No module named 'headwater" in text or "No module named \\'headwater" in text:
            return (
                f"cannot import headwater ({text.strip()}): install headwater in the workers' "
                f"environment, the same minor version as the flow's"
            )
        return f"cannot run headwater's preflight check: {type(answer).__name__}: {text}"
    return f"answered headwater's preflight check with {answer!r}"
