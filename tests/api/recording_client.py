"""A client process for the multi-process tests: records one flow run through get_recorder().

    python recording_client.py complete N   record a flow with N tasks to completion, flush, print the flow id
    python recording_client.py hang N       leave the flow RUNNING (heartbeating), print the id, wait to be killed
"""

from __future__ import annotations

import sys
import time
import uuid

from headwater.api import FlowRunRecord, StateRecord, TaskRunRecord, get_recorder


def _state(run_id: uuid.UUID, kind: str, type_: str) -> StateRecord:
    return StateRecord(run_id, kind, type_, type_.title(), None, time.time(), uuid.uuid4())  # type: ignore[arg-type]


def main(mode: str, n: int) -> None:
    recorder = get_recorder()
    run = FlowRunRecord(uuid.uuid4(), f"{mode}-run", f"{mode}-flow", {"n": n}, created=time.time())
    recorder.flow_run_created(run)
    recorder.state_changed(_state(run.id, "flow", "RUNNING"))
    for _ in range(n):
        t = TaskRunRecord(uuid.uuid4(), run.id, "t-0", "t", created=time.time())
        recorder.task_run_created(t)
        for type_ in ("PENDING", "RUNNING") if mode == "hang" else ("PENDING", "RUNNING", "COMPLETED"):
            recorder.state_changed(_state(t.id, "task", type_))
    if mode == "complete":
        recorder.state_changed(_state(run.id, "flow", "COMPLETED"))
    recorder.flush(timeout=30)
    print(run.id, flush=True)
    while mode == "hang":
        recorder.heartbeat(run.id)
        time.sleep(0.2)
    recorder.close(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
