"""The process a worker starts for one deployment run: `python -m headwater.deploy.execute`.

It asks the kernel to kill it when its worker dies (Linux `PR_SET_PDEATHSIG`), so a run never
outlives the worker that answers for it; fetches the deployment's code (`sources.py`), loads
its entrypoint (`entrypoints.py`) and calls the flow with the run's parameters inside
`adopting(...)`, so the flow run it records is the one the service created. A flow that
fails records its own FAILED end; code that cannot be fetched or loaded ends the run FAILED
here, with the reason, before the process exits 1.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import uuid
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_worker() -> None:
    worker_pid = os.environ.get("HEADWATER_WORKER_PID")
    if not worker_pid or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(worker_pid):  # the worker died before the request took effect
        os._exit(1)


def main() -> int:
    _die_with_worker()
    from ..api.deploy_client import assignment_from
    from ..api.settings import get_settings
    from ..runtime.adopted_run import AdoptedRun, DeploymentRef, adopting
    from .entrypoints import load_flow
    from .sources import fetch, source_from_dict
    from .worker import assignment_from_environment

    assignment = assignment_from(assignment_from_environment())
    deployment = assignment.deployment
    try:
        path = fetch(source_from_dict(deployment.source), get_settings().home / "sources")
        flow = load_flow(deployment.entrypoint, base=path)
    except Exception as exc:
        _fail(assignment.flow_run_id, f"could not load deployment {deployment.name!r}: {exc}")
        print(f"headwater: could not load deployment {deployment.name!r}: {exc}", file=sys.stderr)
        return 1
    run = AdoptedRun(
        assignment.flow_run_id, assignment.run_name, assignment.tags, assignment.parent_flow_run_id,
        assignment.parent_task_run_id,
        DeploymentRef(deployment.id, deployment.name, deployment.version, dict(deployment.parameters)),
    )  # fmt: skip
    with adopting(run):
        try:
            flow(**assignment.parameters)
        except BaseException:  # recorded as the run's end by the engine; shown on stderr
            return 1
    return 0


def _fail(flow_run_id: Any, message: str) -> None:
    from ..api.client import StateClient
    from ..api.records import StateRecord

    try:
        with StateClient(retry_for=10.0) as client:
            client.set_state(StateRecord(flow_run_id, "flow", "FAILED", "Failed", message, time.time(), uuid.uuid4()))
    except Exception as exc:  # the worker marks the run CRASHED when this process exits 1
        print(f"headwater: could not record the run's failure: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
