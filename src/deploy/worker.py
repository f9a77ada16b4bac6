"""A worker: dials out to the state service, takes the runs it is given, runs each in a fresh
interpreter ("process" infrastructure).

It opens no port. It holds one `WorkerRuns` stream on which the service pushes runs claimed
for it (`api/deploy_service.py`), and calls back only to start, release and heartbeat. For
each run: `StartClaimedRun` first (fenced by the claim's token: a worker whose claim expired
never starts a run another worker may have), then `python -m headwater.deploy.execute` with
the run in its environment, recording into the same service. The subprocess asks the kernel
to kill it if the worker dies (`execute.py`), so a SIGKILLed worker leaves no orphan running
on, and the service, hearing no more heartbeats, ends the worker's started runs CRASHED.

A subprocess that exits without its run having ended (killed, or crashed before it could
record) is marked CRASHED here. A cancelled run is stopped by its own process (told on its
control stream: the polite way); if it is still alive after `cancel_grace` seconds (a sync
body blocked in a call) the worker kills it and ends the run CANCELLED itself.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import IO, Any
from uuid import UUID

import grpc

from ..api import rules
from ..api.client import StateClient, Target
from ..api.deploy_client import DeployClient, stream_items
from ..api.deploy_service import assignment_json
from ..api.deploy_store import CLAIM_LEASE, Assignment
from ..api.errors import ClaimLost, StateServiceError
from ..api.records import StateRecord
from ..blocks.notify import install_notifier
from .connection import service_target

log = logging.getLogger("headwater.worker")

#: The environment variable a run's subprocess reads its assignment from (JSON).
ASSIGNMENT_ENV = "HEADWATER_ASSIGNMENT"
_RECONNECT_FIRST, _RECONNECT_MOST = 0.2, 5.0


@dataclass
class _Started:
    assignment: Assignment
    process: subprocess.Popen[bytes]
    cancelled_at: float | None = None
    stopped_by_worker: bool = False


@dataclass
class Worker:
    """Runs the flow runs of one work pool (`pool`) or of the deployments a `serve` process
    registered (`deployments`). `limit`: most runs at once (enforced by the service)."""

    pool: str | None = None
    deployments: tuple[UUID, ...] = ()
    name: str | None = None
    limit: int | None = None
    target: Target | None = None
    cancel_grace: float = 10.0
    #: How long a stopping worker lets its running runs finish before killing them.
    stop_grace: float = 30.0
    #: Where each run's subprocess writes its output (None: the worker's own stdout/stderr).
    output: IO[bytes] | None = None
    lease_seconds: float = CLAIM_LEASE
    _stop: threading.Event = field(default_factory=threading.Event)
    _runs: dict[UUID, _Started] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.pool is None and not self.deployments:
            raise ValueError("a worker serves a work pool (pool=...) or deployments (deployments=...)")
        if self.name is None:
            self.name = f"{self.pool or 'serve'}-{socket.gethostname()}-{os.getpid()}"
        self.started = threading.Event()  # the stream is up (the service knows this worker)

    @property
    def running(self) -> list[UUID]:
        with self._lock:
            return list(self._runs)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Serve until `stop()` (or SIGINT/SIGTERM in `serve_forever`); then say goodbye, so
        claims not started go back to the pool at once, and let running runs finish
        (`stop_grace`)."""
        install_notifier()  # on the embedded default, this process's service runs the automations
        target = self.target or service_target()
        with DeployClient(target, retry_for=30.0) as client, StateClient(target, retry_for=30.0) as states:
            beat = threading.Thread(target=self._heartbeat, args=(client,), name="headwater-worker-heartbeat", daemon=True)
            beat.start()
            try:
                self._listen(client, states)
            finally:
                self._stop.set()
                try:
                    client.stop_worker(self._name)
                except StateServiceError as exc:
                    log.warning("worker %s could not say goodbye to the service: %s", self._name, exc)
                self._finish_running()

    def _finish_running(self) -> None:
        """Let running runs finish for up to `stop_grace` seconds; kill what is left (each
        then ends CRASHED, saying its process was killed) and wait for that to be recorded."""
        give_up = time.monotonic() + self.stop_grace
        with self._lock:
            running = list(self._runs.values())
        for started in running:
            try:
                started.process.wait(max(0.0, give_up - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %s is stopping: killing flow run %s, still running after %g s",
                            self._name, started.assignment.flow_run_id, self.stop_grace)  # fmt: skip
                started.process.kill()
        for thread in [t for t in threading.enumerate() if t.name.startswith("headwater-run-")]:
            thread.join(10.0)

    @property
    def _name(self) -> str:
        assert self.name is not None
        return self.name

    def _listen(self, client: DeployClient, states: StateClient) -> None:
        pause = _RECONNECT_FIRST
        while not self._stop.is_set():
            call = client.worker_stream(
                self._name, pool=self.pool, deployments=self.deployments, host=socket.gethostname(),
                pid=os.getpid(), limit=self.limit, lease_seconds=self.lease_seconds,
            )  # fmt: skip
            ender = threading.Thread(target=lambda c=call: (self._stop.wait(), c.cancel()), daemon=True)
            ender.start()
            try:
                for kind, item in stream_items(call):
                    pause = _RECONNECT_FIRST
                    if kind == "ready":
                        self.started.set()
                        log.info("worker %s is waiting for runs of %s", self._name, self._serves())
                    elif kind == "run" and isinstance(item, Assignment):
                        self._start(client, states, item)
                    elif kind == "cancel" and isinstance(item, UUID):
                        self._cancel(states, item)
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                code = exc.code() if hasattr(exc, "code") else None
                if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    raise StateServiceError(f"worker {self._name}: the service refused its stream: {exc.details()}") from None
                log.debug("worker stream broke (%s); reconnecting", code)
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, _RECONNECT_MOST)

    def _serves(self) -> str:
        return f"work pool {self.pool!r}" if self.pool else f"{len(self.deployments)} deployment(s)"

    def _heartbeat(self, client: DeployClient) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                client.heartbeat(self._name, self.lease_seconds)
            except StateServiceError as exc:
                log.warning("worker %s heartbeat failed: %s", self._name, exc)

    # -- one run ---------------------------------------------------------------------------

    def _start(self, client: DeployClient, states: StateClient, assignment: Assignment) -> None:
        run_id = assignment.flow_run_id
        with self._lock:
            if run_id in self._runs:
                return  # a re-sent claim of a run started here already
        try:
            client.start_run(run_id, assignment.token, self._name)
        except ClaimLost as exc:
            log.info("not starting flow run %s: %s", run_id, exc)
            return
        env = {**os.environ, **_recording_environment(client.target), ASSIGNMENT_ENV: json.dumps(assignment_json(assignment)),
               "HEADWATER_WORKER_PID": str(os.getpid())}  # fmt: skip
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "headwater.deploy.execute"], env=env, stdin=subprocess.DEVNULL,
                stdout=self.output, stderr=self.output,
            )  # fmt: skip
        except OSError as exc:
            _end(states, run_id, rules.CRASHED, "Crashed", f"worker {self._name} could not start its process: {exc}")
            client.release(run_id, assignment.token, self._name)
            return
        started = _Started(assignment, process)
        with self._lock:
            self._runs[run_id] = started
        log.info("worker %s started flow run %r (%s) of %s, pid %d", self._name, assignment.run_name, run_id,
                 assignment.deployment.name, process.pid)  # fmt: skip
        threading.Thread(target=self._watch, args=(client, states, started), name=f"headwater-run-{run_id}",
                         daemon=True).start()  # fmt: skip

    def _watch(self, client: DeployClient, states: StateClient, started: _Started) -> None:
        run_id, token = started.assignment.flow_run_id, started.assignment.token
        code = started.process.wait()
        try:
            if started.stopped_by_worker:
                _end(states, run_id, rules.CANCELLED, "Cancelled",
                     f"stopped by worker {self._name}: its process had not ended {self.cancel_grace:g} s after the cancel")  # fmt: skip
            elif code != 0:
                how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
                _end(states, run_id, rules.CRASHED, "Crashed", f"the run's process {how} before the run ended")
        finally:
            with self._lock:
                self._runs.pop(run_id, None)
            try:
                client.release(run_id, token, self._name)
            except StateServiceError as exc:
                log.warning("could not release the claim on flow run %s: %s", run_id, exc)

    def _cancel(self, states: StateClient, run_id: UUID) -> None:
        with self._lock:
            started = self._runs.get(run_id)
        if started is None or started.cancelled_at is not None:
            return
        started.cancelled_at = time.monotonic()
        threading.Thread(target=self._stop_after_grace, args=(started,), daemon=True).start()

    def _stop_after_grace(self, started: _Started) -> None:
        process = started.process
        try:
            process.wait(self.cancel_grace)
            return  # it stopped itself, as asked on its control stream
        except subprocess.TimeoutExpired:
            pass
        started.stopped_by_worker = True
        log.warning("flow run %s did not stop within %g s of its cancel; killing its process",
                    started.assignment.flow_run_id, self.cancel_grace)  # fmt: skip
        # Not SIGTERM: the engine ends a run interrupted by SIGTERM CRASHED, and this one was
        # cancelled. The polite request went on the run's control stream already.
        process.kill()


def _recording_environment(target: Target) -> dict[str, str]:
    """Point the run's process at the service this worker uses."""
    env = {"HEADWATER_API_URL": target.url}
    if target.token:
        env["HEADWATER_API_TOKEN"] = target.token
    if target.tls_ca:
        env["HEADWATER_API_TLS_CA"] = str(target.tls_ca)
    return env


def _end(states: StateClient, run_id: UUID, type_: str, name: str, message: str) -> None:
    """End the run unless it ended already (its process recorded its own end first)."""
    try:
        current = states.read_flow_run(run_id).state_type
        if current is not None and rules.is_terminal(current):
            return
        states.set_state(StateRecord(run_id, "flow", type_, name, message, time.time(), uuid.uuid4()))
    except StateServiceError as exc:
        log.warning("could not mark flow run %s %s: %s", run_id, type_, exc)


def serve_forever(worker: Worker) -> None:
    """Run `worker` until SIGINT or SIGTERM (the CLI's `worker start`, and `serve`)."""
    previous = {sig: signal.signal(sig, lambda *_: worker.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def assignment_from_environment() -> dict[str, Any]:
    text = os.environ.get(ASSIGNMENT_ENV)
    if not text:
        raise RuntimeError(f"{ASSIGNMENT_ENV} is not set: this module is started by a headwater worker")
    return json.loads(text)  # type: ignore[no-any-return]
