"""What the deployment, work-pool and worker verbs share: the error guard, `k=v` parameters,
JSON output and the JSON shapes of pools, deployments and workers.

Only the standard library is imported at module level: `register` functions import this
module, and registering must cost other commands nothing (`tests/cli/test_startup.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api.deploy_store import Deployment, WorkerInfo, WorkPool

#: A worker whose last heartbeat is older than this is shown offline. Workers beat every
#: CLAIM_LEASE / 3 seconds (about 3 s), so 30 s means many missed beats, not one slow one.
ONLINE_WITHIN_SECONDS = 30.0


def guarded(noun: str, verb: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`verb` as a handler that turns a refusal (not found, exists, invalid parameters, a bad
    entrypoint) into one line on stderr and status 1, as every other noun's verbs do."""

    def run(args: argparse.Namespace) -> int:
        from ..api.errors import StateServiceError
        from ..errors import EntrypointError

        try:
            return verb(args)
        except (StateServiceError, EntrypointError, ValueError) as exc:
            print(f"headwater {noun}: {exc}", file=sys.stderr)
            return 1

    return run


def key_value(text: str) -> tuple[str, Any]:
    """An argparse `type` for `--param k=v`: the value as JSON when it parses (`n=3`,
    `flag=true`, `xs=[1,2]`), else the text as given (`name=world`); anything without `=`
    is refused by argparse (status 2) with this message."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected k=v (a parameter name, '=', its value), not {text!r}")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


PARAM_HELP = "k=v (repeat); v is read as JSON when it parses (3, true, [1,2]), else kept as text"


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def pool_json(pool: WorkPool) -> dict[str, Any]:
    from ._run_shapes import iso

    return {"name": pool.name, "concurrency_limit": pool.concurrency_limit, "paused": pool.paused,
            "description": pool.description, "created": iso(pool.created)}


def deployment_json(dep: Deployment) -> dict[str, Any]:
    from ._run_shapes import iso

    return {
        "id": str(dep.id), "name": dep.name, "flow_name": dep.flow_name, "entrypoint": dep.entrypoint,
        "source": dep.source, "work_pool": dep.work_pool, "parameters": dep.parameters,
        "parameter_names": sorted(dep.parameter_schema.get("properties", {})),
        "parameter_schema": dep.parameter_schema, "tags": list(dep.tags), "description": dep.description,
        "version": dep.version, "paused": dep.paused, "concurrency_limit": dep.concurrency_limit,
        "collision_strategy": dep.collision_strategy, "created": iso(dep.created), "updated": iso(dep.updated),
    }


def worker_json(worker: WorkerInfo, now: float | None = None) -> dict[str, Any]:
    from ._run_shapes import iso

    age = (time.time() if now is None else now) - worker.last_heartbeat
    return {
        "name": worker.name, "pool": worker.pool or "serve", "host": worker.host, "pid": worker.pid,
        "limit": worker.limit, "started": iso(worker.started), "last_heartbeat": iso(worker.last_heartbeat),
        "heartbeat_age_seconds": round(age, 1), "status": worker_status(worker, age),
        "running": [str(r) for r in worker.running], "stopped": iso(worker.stopped),
    }


def worker_status(worker: WorkerInfo, heartbeat_age: float) -> str:
    if worker.stopped is not None:
        return "stopped"
    return "online" if heartbeat_age <= ONLINE_WITHIN_SECONDS else "offline"
