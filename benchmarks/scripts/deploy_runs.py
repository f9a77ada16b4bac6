"""Child of the `deploy-latency` and `deploy-throughput` workloads (issue #15): deployment runs
on real worker processes against the server at HEADWATER_API_URL. Prints one JSON line.

    deploy_runs.py latency N          N runs one after another on one idle worker: the time
                                      from `run_deployment` to the flow's first line
    deploy_runs.py throughput N W     N runs created at once, W workers: runs started per s
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
from pathlib import Path

FLOW = """
import time
from pathlib import Path
from headwater import flow

@flow
def first_line(out: str) -> None:
    Path(out).write_text(repr(time.time()))
"""
WORKER = ("from headwater.deploy.worker import Worker, serve_forever; import sys; "
          "serve_forever(Worker(pool=sys.argv[1], name=sys.argv[2]))")  # fmt: skip


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    from headwater import run_deployment
    from headwater.deploy.connection import deploy_client
    from headwater.deploy.deployments import deploy, to_deployment
    from headwater.deploy.entrypoints import load_flow

    mode, n = sys.argv[1], int(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    scratch = Path(tempfile.mkdtemp(prefix="headwater-bench-deploy-"))
    (scratch / "flows.py").write_text(FLOW)
    pool = f"bench-{uuid.uuid4().hex[:8]}"
    with deploy_client() as client:
        client.create_pool(pool)
    name = deploy(to_deployment(load_flow(f"{scratch / 'flows.py'}:first_line"), "bench"), work_pool_name=pool)[0].name
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, pool, f"{pool}-w{i}"], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(workers)]  # fmt: skip
    try:
        with deploy_client() as client:
            while len([w for w in client.list_workers() if w.pool == pool]) < workers:
                time.sleep(0.05)
        if mode == "latency":
            run_deployment(name, parameters={"out": str(scratch / "warm")}, timeout=60)  # untimed
            found = []
            for i in range(n):
                out = scratch / f"out-{i}"
                asked = time.time()
                run_deployment(name, parameters={"out": str(out)}, timeout=60)
                found.append((float(out.read_text()) - asked) * 1e3)
            print(json.dumps({"p50_ms": _percentile(found, 0.5), "p99_ms": _percentile(found, 0.99), "max_ms": max(found)}))
        else:
            asked = time.time()
            outs = [scratch / f"out-{i}" for i in range(n)]
            runs = [run_deployment(name, parameters={"out": str(o)}, timeout=0).id for o in outs]
            while not all(o.exists() and o.read_text() for o in outs):
                time.sleep(0.02)
            last = max(float(o.read_text()) for o in outs)
            print(json.dumps({"runs_per_s": n / (last - asked), "seconds": last - asked, "runs": len(runs)}))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)


if __name__ == "__main__":
    main()
