"""Clients of the state service: `StateClient` (sync) and `AsyncStateClient` (asyncio), in parallel.

Both expose the same methods with the same arguments; only `await` differs. Each method is one
line naming a `_Call` (method path, response model, converter) so the two classes cannot drift.

Transient transport errors (UNAVAILABLE, DEADLINE_EXCEEDED) are retried with capped
exponential backoff for up to `retry_for` seconds, then raised as `ServiceUnavailable`. Every
write is idempotent (run ids, transition ids), so a retry after a lost reply is safe, and it
carries one request id across its retries, so a retry of a write the server already committed
gets the original reply (a `set_state` retried after its reply was lost still says "new"). A
transport error is never a run outcome: callers must not turn `ServiceUnavailable` into a
FAILED or CRASHED state.

A URL is `grpc://HOST:PORT` or `grpcs://HOST:PORT` and nothing else: one carrying credentials
(`grpc://token@host:port`) is refused, since URLs end up in logs and process listings; the
token comes from `HEADWATER_API_TOKEN` or `token=`. No message or repr shows a token.

`preflight` is the check a process makes before it first records into a server: a wrong
token, TLS that does not fit, or a server that is not there fails at once, before any user
code runs, instead of a flow running to its end and then finding its records lost.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import urlparse
from uuid import UUID

import anyio
import grpc
import grpc.aio

from . import codec
from . import models as m
from .errors import ClientConfigError, ServiceUnavailable, Unauthenticated, error_for_status
from .records import (
    FlowRunInfo,
    FlowRunRecord,
    RunFilter,
    StateInfo,
    StateRecord,
    TaskRunInfo,
    TaskRunRecord,
)
from .local_calls import local_stub
from .log_client import follow, follow_async, read_logs_body
from .log_records import LogLine, LogPage
from .service import REQUEST_ID_KEY, method_path
from .settings import get_settings

TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
#: HTTP/2 keepalive: while a call is in flight, a ping every KEEPALIVE_TIME_MS, and a
#: connection whose ping goes unanswered for KEEPALIVE_TIMEOUT_MS is closed (recent grpc times
#: keepalive pings with `ping_timeout_ms`, older with `keepalive_timeout_ms`: both are set).
#: A silent peer (a dropped route, a middlebox that forgot the connection: TCP itself never
#: notices) fails the calls on it within about 5 s, so the recorder reconnects and re-sends
#: instead of waiting forever. The server accepts pings this often (see `server.py`). An idle
#: connection is not pinged: recorder batches are unary calls, so a client with nothing to
#: send has nothing to lose, and a thousand idle clients stay silent.
KEEPALIVE_TIME_MS = 2000
KEEPALIVE_TIMEOUT_MS = 3000
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
]
CHANNEL_OPTIONS = [
    *KEEPALIVE_OPTIONS,
    ("grpc.max_receive_message_length", codec.MAX_GRPC_MESSAGE),
    ("grpc.max_send_message_length", codec.MAX_GRPC_MESSAGE),
    # Come back quickly after a server restart instead of grpc's default 1 s -> 120 s backoff.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]

T = TypeVar("T")
S = TypeVar("S", bound="UnaryCaller")


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to reach a server, parsed from `grpc://host:port` or `grpcs://host:port`."""

    address: str
    tls: bool
    token: str | None = field(repr=False)
    tls_ca: Path | None

    @classmethod
    def resolve(cls, url: str | None, token: str | None, tls_ca: Path | None) -> Target:
        settings = get_settings()
        url = url or settings.api_url
        if not url:
            raise ClientConfigError("no state service URL: pass one or set HEADWATER_API_URL")
        address, tls = parse_url(url)
        return cls(
            address, tls,
            token if token is not None else settings.api_token,
            tls_ca if tls_ca is not None else settings.api_tls_ca,
        )

    @property
    def url(self) -> str:
        """The server's URL, fit to print (it never holds the token)."""
        return f"{'grpcs' if self.tls else 'grpc'}://{self.address}"

    def credentials(self) -> grpc.ChannelCredentials:
        root = Path(self.tls_ca).read_bytes() if self.tls_ca else None
        return grpc.ssl_channel_credentials(root_certificates=root)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def channel(self) -> grpc.Channel:
        if self.tls:
            return grpc.secure_channel(self.address, self.credentials(), CHANNEL_OPTIONS)
        return grpc.insecure_channel(self.address, CHANNEL_OPTIONS)

    def aio_channel(self) -> grpc.aio.Channel:
        if self.tls:
            return grpc.aio.secure_channel(self.address, self.credentials(), CHANNEL_OPTIONS)
        return grpc.aio.insecure_channel(self.address, CHANNEL_OPTIONS)


def parse_url(url: str) -> tuple[str, bool]:
    """(`HOST:PORT`, whether TLS) from `grpc://HOST:PORT` or `grpcs://HOST:PORT` (a bare
    `HOST:PORT` means `grpc://`). Raises `ClientConfigError` for anything else, including a URL
    with credentials in it; the message shows the URL with those credentials hidden."""
    parsed = urlparse(url if "://" in url else f"grpc://{url}")
    shown = redact_url(url)
    if "@" in parsed.netloc:
        raise ClientConfigError(
            f"the state service URL {shown} carries credentials; a URL names only the server "
            f"(grpc://HOST:PORT): give the token in HEADWATER_API_TOKEN (or --token, token=)"
        )
    try:
        port = parsed.port
    except ValueError:
        port = None
    if (
        parsed.scheme not in {"grpc", "grpcs"} or not parsed.hostname or not port
        or parsed.path not in {"", "/"} or parsed.query or parsed.fragment
    ):
        raise ClientConfigError(
            f"state service URL must look like grpc://HOST:PORT or grpcs://HOST:PORT, not {shown}"
        )
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return f"{host}:{port}", parsed.scheme == "grpcs"


def redact_url(url: str) -> str:
    """`url` fit for a message: credentials before an `@`, and a port that is not a number,
    become `***`; anything after the host and port (a path or query could hold a secret too)
    becomes `/...`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    host, colon, port = authority.rpartition(":")
    if colon and not port.isdigit() and not port.endswith("]"):
        authority = f"{host}:***"  # not a port: whatever was typed there is not shown
    more = "/..." if slash and tail else slash
    return f"{scheme}{sep}{authority}{more}"


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    method: str
    model: type[m.Wire]
    convert: Callable[[Any], T]
    #: A write carries a request id, the same on every retry, so the server answers a retry
    #: of a write it already committed with the original reply (`service._Replies`).
    write: bool = False


def _runs(out: m.FlowRunsOut) -> list[FlowRunInfo]:
    return [codec.flow_run_info(r) for r in out.runs]


def _tasks(out: m.TaskRunsOut) -> list[TaskRunInfo]:
    return [codec.task_run_info(r) for r in out.runs]


def _states(out: m.StatesOut) -> list[StateInfo]:
    return [codec.state_info(s) for s in out.states]


def _none(out: m.Empty) -> None:
    return None


def _fresh(out: m.SetStateOut) -> bool:
    return not out.duplicate


CREATE_FLOW_RUN = _Call("CreateFlowRun", m.Empty, _none, write=True)
CREATE_TASK_RUN = _Call("CreateTaskRun", m.Empty, _none, write=True)
SET_STATE = _Call("SetState", m.SetStateOut, _fresh, write=True)
HEARTBEAT = _Call("Heartbeat", m.Empty, _none, write=True)
PING = _Call("Ping", m.Empty, _none)
READ_FLOW_RUN = _Call("ReadFlowRun", m.FlowRunOut, codec.flow_run_info)
READ_TASK_RUN = _Call("ReadTaskRun", m.TaskRunOut, codec.task_run_info)
LIST_FLOW_RUNS = _Call("ListFlowRuns", m.FlowRunsOut, _runs)
LIST_TASK_RUNS = _Call("ListTaskRuns", m.TaskRunsOut, _tasks)
READ_HISTORY = _Call("ReadHistory", m.StatesOut, _states)
READ_LOGS = _Call("ReadLogs", m.LogsOut, codec.log_page)


class _Backoff:
    """Capped exponential backoff with jitter, bounded by a total time budget."""

    def __init__(self, budget: float) -> None:
        self._deadline = time.monotonic() + budget
        self._delay = 0.05

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None when the budget is spent."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            return None
        delay = min(self._delay * (0.5 + random.random()), left, 2.0)
        self._delay = min(self._delay * 2, 2.0)
        return delay


def _metadata_for(call: _Call[Any], metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    if not call.write:
        return metadata
    return (*metadata, (REQUEST_ID_KEY, secrets.token_hex(12)))


def _unavailable(call: _Call[Any], exc: grpc.RpcError) -> ServiceUnavailable:
    return ServiceUnavailable(f"{call.method}: state service unreachable: {exc.details()}")


def invoke(
    stub: Any,
    call: _Call[T],
    body: dict[str, Any],
    metadata: tuple[tuple[str, str], ...],
    *,
    timeout: float,
    retry_for: float,
    error_for: Callable[[grpc.StatusCode, str], Exception] = error_for_status,
) -> T:
    """One blocking call through `stub`, retried while the server is unreachable (see the
    module docstring); any other status is raised as `error_for` says."""
    request, backoff = codec.pack(body), _Backoff(retry_for)
    metadata = _metadata_for(call, metadata)
    while True:
        try:
            reply = stub(request, timeout=timeout, metadata=metadata)
            break
        except grpc.RpcError as exc:
            code = exc.code()
            delay = backoff.next_delay() if code in TRANSIENT else None
            if delay is None:
                if code in TRANSIENT:
                    raise _unavailable(call, exc) from None
                raise error_for(code, exc.details() or "") from None
            time.sleep(delay)
    return call.convert(codec.decode(call.model, reply, max_bytes=codec.MAX_GRPC_MESSAGE))


# -- preflight -------------------------------------------------------------------------------

_OTHERWISE = (
    "or unset HEADWATER_API_URL to record into a server embedded in this process, "
    "or set HEADWATER_RECORD=0 to run without recording"
)
# What TLS failures say. Not a bare "handshake": a connection refused or reset under load reads
# "tcp handshaker shutdown", which is transient, not a TLS mismatch.
_TLS_WORDS = ("ssl", "tls", "certificate")


def looks_like_tls_failure(details: str) -> bool:
    """Whether a failed call's details say TLS did not fit (final), not that the server was
    busy or away (transient, retried until the preflight's wait runs out)."""
    lowered = details.lower()
    return any(word in lowered for word in _TLS_WORDS)


def preflight(target: Target, wait: float = 5.0, *, unreachable: str | None = None) -> None:
    """Check that the server at `target` answers and accepts this process's token and TLS
    settings: one cheap `Ping`, repeated while the server is unreachable, for up to `wait`
    seconds. Call it when a process first records into a server.

    A refused token (`Unauthenticated`) and TLS that does not fit (`ClientConfigError`) are
    final at once; still unreachable after `wait` is `ServiceUnavailable`. Each message names
    the URL (never the token) and the ways out; `unreachable` replaces the ways out of the last
    case (a flow's check on a cluster's workers gives advice about the workers' network)."""
    try:
        channel = target.channel()
    except OSError as exc:  # the CA file
        raise ClientConfigError(
            f"cannot read the TLS CA {target.tls_ca} for the state service at {target.url} "
            f"({exc.strerror or exc}): fix HEADWATER_API_TLS_CA, {_OTHERWISE}"
        ) from None
    try:
        _ping_until(channel, target, time.monotonic() + wait, wait, unreachable)
    finally:
        channel.close()


def _ping_until(
    channel: grpc.Channel, target: Target, deadline: float, wait: float, unreachable: str | None
) -> None:
    ping, request = channel.unary_unary(method_path(PING.method)), codec.pack({})
    closed = 0
    while True:
        timeout = max(0.2, min(deadline - time.monotonic(), 2.0))
        try:
            ping(request, timeout=timeout, metadata=target.metadata())
            return
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return  # a server from before Ping: it answered, which is what is checked here
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise Unauthenticated(
                f"the state service at {target.url} refused this process "
                f"({details.partition(':')[0]}): set HEADWATER_API_TOKEN to the token the server "
                f"was started with (`headwater server start --token`), {_OTHERWISE}"
            )
        if code not in TRANSIENT:
            raise error_for_status(code, f"the state service at {target.url}: {details}")
        if looks_like_tls_failure(details):
            raise _tls_mismatch(target, details)
        # A plain connection to a TLS server is closed before any answer.
        closed = closed + 1 if "socket closed" in details.lower() else 0
        if closed >= 3 and not target.tls:
            raise _tls_mismatch(target, "the server closed the connection before answering")
        if time.monotonic() + 0.25 >= deadline:
            ways_out = unreachable or (
                f"start it (`headwater server start`) or fix HEADWATER_API_URL, {_OTHERWISE}"
            )
            raise ServiceUnavailable(
                f"the state service at {target.url} is unreachable ({details}) after {wait:g} s: "
                f"{ways_out}"
            )
        time.sleep(0.25)


def _tls_mismatch(target: Target, details: str) -> ClientConfigError:
    if target.tls:
        fix = (
            "set HEADWATER_API_TLS_CA to the PEM file of the server's certificate or its CA, "
            "and use grpc:// if the server does not serve TLS"
        )
    else:
        fix = "if the server serves TLS, use grpcs:// and set HEADWATER_API_TLS_CA"
    return ClientConfigError(
        f"TLS does not fit the state service at {target.url} ({details}): {fix}, {_OTHERWISE}"
    )


class UnaryCaller:
    """One gRPC channel to the state service and its unary calls, retried while the service
    is away (`invoke`); thread-safe. `StateClient` and the cache's `RemoteStore` are these."""

    #: how a refused call's status and details become the error raised (`invoke`)
    _error_for: Callable[[grpc.StatusCode, str], Exception] = staticmethod(error_for_status)

    def __init__(
        self,
        target: Target | str | None,
        *,
        token: str | None = None,
        tls_ca: Path | None = None,
        timeout: float,
        retry_for: float,
    ) -> None:
        """`target` is a `Target`, or a URL resolved with `token` and `tls_ca` (None:
        `HEADWATER_API_URL`, with `HEADWATER_API_TOKEN` and `HEADWATER_API_TLS_CA`)."""
        self.target = target = target if isinstance(target, Target) else Target.resolve(target, token, tls_ca)
        self._channel = target.channel()
        self._metadata = target.metadata()
        self._timeout, self._retry_for = timeout, retry_for
        self._stubs: dict[str, Any] = {}

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, call: _Call[T], body: dict[str, Any], *, once: float | None = None) -> T:
        """`once`: a single attempt with that timeout, not retried while the server is
        unreachable (for calls that only tidy up, which must not hold a flow's end)."""
        stub = self._stubs.get(call.method)
        if stub is None:  # the server may run in this process: then it is called directly
            stub = local_stub(self.target.url, call.method) or self._channel.unary_unary(method_path(call.method))
            self._stubs[call.method] = stub
        return invoke(
            stub, call, body, self._metadata, timeout=self._timeout if once is None else once,
            retry_for=self._retry_for if once is None else 0.0, error_for=self._error_for,
        )  # fmt: skip


class StateClient(UnaryCaller):
    """Blocking client; thread-safe (one gRPC channel shared by all threads)."""

    def __init__(
        self,
        url: Target | str | None = None,
        *,
        token: str | None = None,
        tls_ca: Path | None = None,
        timeout: float = 10.0,
        retry_for: float = 30.0,
    ) -> None:
        super().__init__(url, token=token, tls_ca=tls_ca, timeout=timeout, retry_for=retry_for)

    def create_flow_run(self, rec: FlowRunRecord) -> None:
        return self._call(CREATE_FLOW_RUN, codec.flow_run_body(rec))

    def create_task_run(self, rec: TaskRunRecord) -> None:
        return self._call(CREATE_TASK_RUN, codec.task_run_body(rec))

    def set_state(self, rec: StateRecord) -> bool:
        """Record a state; True if new, False if this transition id was already recorded."""
        return self._call(SET_STATE, codec.state_body(rec))

    def heartbeat(self, flow_run_id: UUID) -> None:
        return self._call(HEARTBEAT, {"flow_run_id": flow_run_id.bytes})

    def ping(self) -> None:
        """Answered by any server that accepts this client's token; reads and writes nothing."""
        return self._call(PING, {})

    def read_flow_run(self, ident: UUID | str) -> FlowRunInfo:
        return self._call(READ_FLOW_RUN, {"id": str(ident)})

    def read_task_run(self, ident: UUID | str) -> TaskRunInfo:
        return self._call(READ_TASK_RUN, {"id": str(ident)})

    def list_flow_runs(self, flt: RunFilter = RunFilter()) -> list[FlowRunInfo]:
        return self._call(LIST_FLOW_RUNS, codec.filter_body(flt))

    def list_task_runs(self, flow_run_id: UUID) -> list[TaskRunInfo]:
        return self._call(LIST_TASK_RUNS, {"run_id": flow_run_id.bytes})

    def read_history(self, run_id: UUID) -> list[StateInfo]:
        return self._call(READ_HISTORY, {"run_id": run_id.bytes})

    def read_logs(
        self, run_id: UUID | str, *, level: int | str | None = None, task: str | None = None,
        after_seq: int | None = None, limit: int = 1000, tail: bool = False,
    ) -> LogPage:
        """A page of a flow run's log lines (its task runs' and subflows' included) or a task
        run's, oldest first; `level` a number or name (lines at it or above), `task` a task's
        or task run's name; `tail`: the last `limit` lines. Next page: `after_seq=page.next_seq`."""
        return self._call(READ_LOGS, read_logs_body(run_id, level, task, after_seq, limit, tail))

    def follow_logs(
        self, run_id: UUID | str, *, level: int | str | None = None, task: str | None = None,
        after_seq: int | None = None,
    ) -> Iterator[LogLine]:
        """The run's lines as they are committed (those already stored first), until the run
        is in a final state; pushed by the server (`FollowLogs`), never polled."""
        stream = self._channel.unary_stream(method_path("FollowLogs"))

        def open_stream(request: bytes) -> Iterator[bytes]:
            return stream(request, metadata=self._metadata)  # type: ignore[no-any-return]

        return follow(open_stream, run_id, level=level, task=task, after_seq=after_seq,
                      retry_for=self._retry_for)


class AsyncStateClient:
    """The same methods as `StateClient`, awaited; runs on asyncio (grpc.aio), e.g. via anyio."""

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        tls_ca: Path | None = None,
        timeout: float = 10.0,
        retry_for: float = 30.0,
    ) -> None:
        self.target = Target.resolve(url, token, tls_ca)
        self._channel = self.target.aio_channel()
        self._metadata = self.target.metadata()
        self._timeout, self._retry_for = timeout, retry_for

    async def __aenter__(self) -> AsyncStateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, call: _Call[T], body: dict[str, Any]) -> T:
        stub = self._channel.unary_unary(method_path(call.method))
        request, backoff = codec.pack(body), _Backoff(self._retry_for)
        metadata = _metadata_for(call, self._metadata)
        while True:
            try:
                reply = await stub(request, timeout=self._timeout, metadata=metadata)
                break
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                delay = backoff.next_delay() if code in TRANSIENT else None
                if delay is None:
                    if code in TRANSIENT:
                        raise _unavailable(call, exc) from None
                    raise error_for_status(code, exc.details() or "") from None
                await anyio.sleep(delay)
        return call.convert(codec.decode(call.model, reply, max_bytes=codec.MAX_GRPC_MESSAGE))

    async def create_flow_run(self, rec: FlowRunRecord) -> None:
        return await self._call(CREATE_FLOW_RUN, codec.flow_run_body(rec))

    async def create_task_run(self, rec: TaskRunRecord) -> None:
        return await self._call(CREATE_TASK_RUN, codec.task_run_body(rec))

    async def set_state(self, rec: StateRecord) -> bool:
        """Record a state; True if new, False if this transition id was already recorded."""
        return await self._call(SET_STATE, codec.state_body(rec))

    async def heartbeat(self, flow_run_id: UUID) -> None:
        return await self._call(HEARTBEAT, {"flow_run_id": flow_run_id.bytes})

    async def ping(self) -> None:
        """Answered by any server that accepts this client's token; reads and writes nothing."""
        return await self._call(PING, {})

    async def read_flow_run(self, ident: UUID | str) -> FlowRunInfo:
        return await self._call(READ_FLOW_RUN, {"id": str(ident)})

    async def read_task_run(self, ident: UUID | str) -> TaskRunInfo:
        return await self._call(READ_TASK_RUN, {"id": str(ident)})

    async def list_flow_runs(self, flt: RunFilter = RunFilter()) -> list[FlowRunInfo]:
        return await self._call(LIST_FLOW_RUNS, codec.filter_body(flt))

    async def list_task_runs(self, flow_run_id: UUID) -> list[TaskRunInfo]:
        return await self._call(LIST_TASK_RUNS, {"run_id": flow_run_id.bytes})

    async def read_history(self, run_id: UUID) -> list[StateInfo]:
        return await self._call(READ_HISTORY, {"run_id": run_id.bytes})

    async def read_logs(
        self, run_id: UUID | str, *, level: int | str | None = None, task: str | None = None,
        after_seq: int | None = None, limit: int = 1000, tail: bool = False,
    ) -> LogPage:
        """See `StateClient.read_logs`."""
        return await self._call(READ_LOGS, read_logs_body(run_id, level, task, after_seq, limit, tail))

    def follow_logs(
        self, run_id: UUID | str, *, level: int | str | None = None, task: str | None = None,
        after_seq: int | None = None,
    ) -> AsyncIterator[LogLine]:
        """See `StateClient.follow_logs`; iterate with `async for`."""
        stream = self._channel.unary_stream(method_path("FollowLogs"))

        def open_stream(request: bytes) -> Any:
            return stream(request, metadata=self._metadata)

        return follow_async(open_stream, run_id, level=level, task=task, after_seq=after_seq,
                            retry_for=self._retry_for)
