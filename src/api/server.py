"""The state server process: gRPC listener, auth/TLS policy, the liveness sweeper, lifecycle.

The sweeper thread is also the control channel's timer (cancel and pause deadlines): each turn it delivers control
messages written into the database by others and ends cancelled runs whose deadline passed
(`ControlService.sweep`), waking early for the next deadline.

`StateServer` wires storage, the group committer and the service into a sync `grpc.server`
with a thread pool (measured: it meets the throughput targets on 2 cores, and keeps the
blocking SQLite work off any event loop). It is used two ways:

- standalone, by `headwater server start` (`serve_until_signalled`);
- embedded, started on 127.0.0.1:<ephemeral> inside the flow process by `recorder.get_recorder`.

Policy: listening beyond loopback requires a bearer token (refused otherwise); TLS is used
when a certificate and key are given. The sweeper marks RUNNING flow runs whose heartbeats
stopped for `heartbeat_timeout` seconds as CRASHED, with their live task runs. The timeout
must be at least `HEARTBEAT_TIMEOUT_FACTOR` times the clients' heartbeat interval, else a
live run would be reaped between two beats: the server refuses to start.

Silence is counted from the stored heartbeats, except that a standalone server counts it only
from its own start: its clients could not heartbeat while it was down, and reconnect now. The
embedded server (`reap_at_start=True`) sweeps at once when it opens the home: a flow process on
the same home heartbeats through its own embedded server, so a stale stored heartbeat means its
process is gone (SIGKILLed, say), and the run is marked CRASHED before this process records.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
import weakref
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

import grpc

from . import rules
from .client import KEEPALIVE_OPTIONS, KEEPALIVE_TIME_MS
from .codec import MAX_GRPC_MESSAGE
from .committer import GroupCommitter
from .writer_process import MODES as WRITER_MODES
from .errors import ServerConfigError
from .records import HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT_FACTOR, Batch, StateRecord
from .service import StateService
from .settings import DB_FILENAME, DEFAULT_PORT
from .storage import Storage

log = logging.getLogger(__name__)

#: Worker threads of the gRPC server; each open recorder stream holds one.
MAX_WORKERS = 128


def is_loopback(host: str) -> bool:
    if host in {"localhost", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class StateServer:
    """One state service instance over the database in `home`."""

    def __init__(
        self,
        home: Path,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        heartbeat_timeout: float = 30.0,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        reap_at_start: bool = False,
        synchronous: str = "FULL",
        writer_process: str = "never",
        doorbell: bool = False,
    ) -> None:
        check_heartbeat_timeout(heartbeat_timeout, heartbeat_interval)
        if not token and not is_loopback(host):
            raise ServerConfigError(
                f"refusing to listen on {host} without a token: anyone on the network could "
                f"write run states; pass --token or set HEADWATER_API_TOKEN"
            )
        if writer_process not in WRITER_MODES:
            raise ServerConfigError(
                f"HEADWATER_WRITER_PROCESS={writer_process!r} is not one of {', '.join(WRITER_MODES)}"
            )
        if (tls_cert is None) != (tls_key is None):
            raise ServerConfigError("TLS needs both --tls-cert and --tls-key")
        self.home = Path(home).expanduser()
        self.host, self._port, self.token = host, port, token
        self._tls = (tls_cert, tls_key) if tls_cert and tls_key else None
        self.heartbeat_timeout = heartbeat_timeout
        self._reap_at_start = reap_at_start
        self._synchronous = synchronous
        self._writer_process = writer_process
        self._doorbell = doorbell
        self._stopped = threading.Event()
        self._closed = threading.Event()
        self._server: grpc.Server | None = None
        self._service: StateService | None = None
        self._local: dict[str, Callable[[bytes, Any], bytes]] | None = None
        self.storage: Storage | None = None
        self.committer: GroupCommitter | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "grpcs" if self._tls else "grpc"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> str:
        """Open the database, bind, start serving and sweeping; returns the client URL."""
        self.storage = Storage(self.home / DB_FILENAME, synchronous=self._synchronous)
        self.committer = GroupCommitter(self.storage, writer_process=self._writer_process)
        service = self._service = StateService(
            self.storage, self.committer, self.token, home=self.home, synchronous=self._synchronous,
            doorbell=self._doorbell,
        )
        options = [
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE),
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE),
            ("grpc.so_reuseport", 0),
            # Ping clients too, so a stream to a vanished client frees its worker thread, and
            # accept the clients' pings (twice as often as they send them: no false strikes).
            *KEEPALIVE_OPTIONS,
            ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
        ]
        server = grpc.server(ThreadPoolExecutor(MAX_WORKERS, "headwater-rpc"), options=options)
        server.add_generic_rpc_handlers((service.generic_handler(),))
        address = f"{self.host}:{self._port}"
        if self._tls:
            cert, key = (Path(p).read_bytes() for p in self._tls)
            creds = grpc.ssl_server_credentials([(key, cert)])
            self.port = server.add_secure_port(address, creds)
        else:
            self.port = server.add_insecure_port(address)
        server.start()
        self._server = server
        _end_streams_before_executors_join(self)
        # When silence starts to count: see the module docstring.
        self._started_at = 0.0 if self._reap_at_start else time.time()
        if self._reap_at_start:
            self.sweep()
            service.control.sweep()  # cancel deadlines that passed while nothing served
            service.pauses.sweep()  # and pause deadlines
        threading.Thread(target=self._sweep_loop, name="headwater-sweeper", daemon=True).start()
        return self.url

    def unary_handlers(self) -> dict[str, Callable[[bytes, Any], bytes]]:
        """The service's unary methods, for clients in this process (`local_calls.py`)."""
        if self._service is None or self._stopped.is_set():
            return {}
        if self._local is None:
            self._local = self._service.unary_handlers()
        return self._local

    @property
    def serving(self) -> bool:
        return self._service is not None and not self._stopped.is_set()

    def end_streams(self) -> None:
        """End every open server stream (slot grants, log follows, control messages): none
        ends by itself."""
        if self._service is not None:
            self._service.slots.end_streams()
            self._service.logs.end_streams()
            self._service.control.end_streams()
            self._service.deployments.end_streams()
            self._service.events.end_streams()

    def stop(self, grace: float = 2.0) -> None:
        """Stop accepting calls, let in-flight ones finish, commit what is queued, close."""
        if self._stopped.is_set():
            self._closed.wait(grace + 15)
            return
        self._stopped.set()
        if self._server is not None:
            done = self._server.stop(grace)
            self.end_streams()
            done.wait(grace + 1)
        if self._service is not None:
            self._service.close()
        if self.committer is not None:
            self.committer.close()
        if self.storage is not None:
            self.storage.close()
        self._closed.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the server has fully stopped."""
        return self._closed.wait(timeout)

    # -- liveness --------------------------------------------------------------------------

    def _sweep_loop(self) -> None:
        interval = max(0.05, min(1.0, self.heartbeat_timeout / 4))
        while True:
            # The control channel's timers (cancel deadlines) are rows: wake for the next one.
            try:
                due = self._next_deadline()
            except Exception:
                if self._stopped.is_set():
                    return  # the server closed its stores under this read: it is stopping
                log.exception("reading the next deadline failed; retrying next interval")
                due = None
            # A hair past the due time: woken a moment early by a timer on another clock, a
            # run due then would wait a whole interval more.
            wait = interval if due is None else min(interval, max(0.0, due - time.time() + 0.005))
            if self._stopped.wait(wait):
                return
            try:
                self.sweep()
            except Exception:
                log.exception("heartbeat sweep failed; retrying next interval")
            try:
                if self._service is not None:
                    self._service.control.sweep()
            except Exception:
                log.exception("control sweep (cancel deadlines) failed; retrying next interval")
            try:
                if self._service is not None:
                    self._service.pauses.sweep()
            except Exception:
                log.exception("pause sweep (pause deadlines) failed; retrying next interval")
            try:
                if self._service is not None:
                    self._service.deployments.sweep()
            except Exception:
                log.exception("deployment sweep (claims, due runs) failed; retrying next interval")

    def _next_deadline(self) -> float | None:
        """The earliest cancel or pause deadline still open, or queued deployment run due
        (all are rows), or None."""
        if self._service is None:
            return None
        due = [d for d in (self._service.control.store.next_deadline(), self._service.pauses.store.next_deadline(),
                           self._service.deployments.store.next_due(after=time.time()))
               if d is not None]
        return min(due) if due else None

    def sweep(self, now: float | None = None) -> int:
        """Mark flow runs with stale heartbeats CRASHED; returns how many were marked."""
        assert self.storage is not None and self.committer is not None
        now = time.time() if now is None else now
        cutoff = now - self.heartbeat_timeout
        # A restarted server has not been listening: count silence only since it came up.
        if self._started_at > cutoff:
            return 0
        marked = 0
        for flow_run_id, last in self.storage.stale_flow_runs(cutoff):
            message = (
                f"heartbeat lost: no heartbeat from the flow run's process for more than "
                f"{self.heartbeat_timeout:g} s ({_last_seen(last, now)}); presumed crashed"
            )
            states = [_crashed(flow_run_id, "flow", message, now)]
            for task_run_id in self.storage.live_task_runs(flow_run_id):
                states.append(_crashed(task_run_id, "task", f"flow run crashed: {message}", now))
            result = self.committer.apply(Batch(states=tuple(states)))
            marked += 1 if result.applied else 0
        return marked


def check_heartbeat_timeout(timeout: float, interval: float) -> None:
    """Refuse a heartbeat timeout the clients' heartbeats cannot meet."""
    floor = HEARTBEAT_TIMEOUT_FACTOR * interval
    if not timeout >= floor:
        raise ServerConfigError(
            f"heartbeat timeout {timeout:g} s is too short: clients heartbeat every "
            f"{interval:g} s (HEADWATER_HEARTBEAT_INTERVAL_SECONDS), and a timeout under "
            f"{HEARTBEAT_TIMEOUT_FACTOR} intervals ({floor:g} s) would mark live flow runs "
            f"CRASHED; set --heartbeat-timeout (HEADWATER_HEARTBEAT_TIMEOUT_SECONDS) to "
            f"{floor:g} or more"
        )


def _last_seen(last: float | None, now: float) -> str:
    return "none stored" if last is None else f"the last {now - last:.1f} s ago"


def _crashed(run_id: uuid.UUID, kind: str, message: str, now: float) -> StateRecord:
    return StateRecord(run_id, kind, rules.CRASHED, "Crashed", message, now, uuid.uuid4())  # type: ignore[arg-type]


def serve_until_signalled(server: StateServer, *, announce: bool = True) -> None:
    """Start, print the URL on one line once ready, serve until SIGINT/SIGTERM, stop cleanly."""
    url = server.start()
    if announce:
        print(url, flush=True)

    def _stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.stop, daemon=True).start()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not server.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _end_streams_before_executors_join(server: StateServer) -> None:
    """At interpreter exit, Python joins every executor thread (`concurrent.futures`) before
    `atexit` handlers run, and refuses new work from then on. A stream a server serves holds
    one of its executor's threads until the client or the server ends it, and a call that
    arrives after the join began cannot be given a thread at all (gRPC prints the refusal as
    a traceback). A client in this process ends its own streams first (its
    `threading._register_atexit` runs before that join), but one that raced its own close,
    or one in another process, would hold the exit forever. So, registered after
    `concurrent.futures` and so run before its join, the server stops taking calls and ends
    its streams; what is queued is still committed by `stop` at `atexit`. Weakly: a stopped
    server may be collected."""
    ref = weakref.ref(server)

    def end() -> None:
        alive = ref()
        if alive is not None and alive._server is not None:
            # A grace, however short, says goodbye with NO_ERROR: a client's channel in this
            # process (its streams ended just before) does not log the "cancelling all calls"
            # GOAWAY that grace 0 sends.
            stopped = alive._server.stop(0.5)
            alive.end_streams()
            stopped.wait(2)  # the server's own thread has stopped handing calls to the pool

    threading._register_atexit(end)  # type: ignore[attr-defined]
