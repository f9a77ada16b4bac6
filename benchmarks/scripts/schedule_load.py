"""Child of the `schedule-*` workloads (issue #16). Prints one JSON line.

    schedule_load.py cpu N        N deployments, each on a one-minute cron, in a fresh home:
                                  the scheduler pass run once a (virtual) second for 3
                                  minutes; CPU ms per pass (mean, max) and per run it made
    schedule_load.py delay N S    N deployments on an S-second interval, a standalone server
                                  (HEADWATER_API_URL) and one worker, for about 3 S seconds:
                                  from each run's nominal time to its RUNNING, p50 / p99 ms
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path


def _cpu(n: int) -> dict[str, float]:
    from headwater.api.deploy_store import DeploymentSpec, DeployStore
    from headwater.api.schedules import Cron
    from headwater.api.storage import Storage

    home = Path(tempfile.mkdtemp(prefix="headwater-bench-schedule-"))
    storage = Storage(home / "headwater.db", synchronous="NORMAL")
    store = DeployStore(home / "headwater.db", synchronous="NORMAL", beside_storage=True)
    start = (time.time() // 60 + 1) * 60
    for i in range(n):
        store.upsert_deployment(DeploymentSpec(
            f"f/d{i}", "f", "flows.py:f", {"kind": "local", "path": str(home)}, {}, {},
            schedules=(Cron("* * * * *").to_dict(),)), now=start)  # fmt: skip
    passes, made = [], 0
    for second in range(180):
        cpu = time.process_time()
        made += store.scheduler_pass(now=start + second)[0]
        passes.append((time.process_time() - cpu) * 1e3)
    store.close()
    storage.close()
    return {"ms_per_pass": sum(passes) / len(passes), "max_ms_per_pass": max(passes), "runs": made,
            "ms_per_run": sum(passes) / max(made, 1)}  # fmt: skip


FLOW = "from headwater import flow\n\n@flow\ndef tick() -> None:\n    pass\n"
WORKER = ("from headwater.deploy.worker import Worker, serve_forever; import sys; "
          "serve_forever(Worker(pool=sys.argv[1], name=sys.argv[1] + '-w'))")  # fmt: skip


def _delay(n: int, every: float) -> dict[str, float]:
    from headwater.api import StateClient
    from headwater.api.schedules import Interval
    from headwater.deploy.connection import deploy_client, service_target
    from headwater.deploy.deployments import deploy, to_deployment
    from headwater.deploy.entrypoints import load_flow

    scratch = Path(tempfile.mkdtemp(prefix="headwater-bench-delay-"))
    (scratch / "flows.py").write_text(FLOW)
    pool = f"bench-{uuid.uuid4().hex[:8]}"
    with deploy_client() as client:
        client.create_pool(pool)
    flow = load_flow(f"{scratch / 'flows.py'}:tick")
    worker = subprocess.Popen([sys.executable, "-c", WORKER, pool], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for i in range(n):
            deploy(to_deployment(flow, f"d{i}", schedules=[Interval(timedelta(seconds=every), overlap="allow_all")]),
                   work_pool_name=pool)  # fmt: skip
        time.sleep(3 * every + 3)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    delays = []
    with StateClient(service_target()) as reader:
        for run in reader.list_flow_runs():
            if not run.name.startswith("scheduled-"):
                continue
            history = reader.read_history(run.id)
            nominal = next((s.timestamp for s in history if s.type == "SCHEDULED"), None)
            running = next((s.timestamp for s in history if s.type == "RUNNING"), None)
            due = time.mktime(time.strptime(run.name[len("scheduled-"):], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            if running is not None and nominal is not None:
                delays.append((running - due) * 1e3)
    delays.sort()
    if not delays:
        raise RuntimeError("no scheduled run reached RUNNING")
    return {"p50_ms": delays[len(delays) // 2], "p99_ms": delays[min(len(delays) - 1, int(0.99 * len(delays)))],
            "runs": len(delays)}  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1] == "cpu":
        print(json.dumps(_cpu(int(sys.argv[2]))))
    else:
        print(json.dumps(_delay(int(sys.argv[2]), float(sys.argv[3]))))
