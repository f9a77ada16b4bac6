"""Reporting every run and state change to the state service, from wherever the run executes.

`RunServices` is how a run reaches its orchestration services (today: the recorder; later
slots and the shared cache). It names the server (URL, token, TLS CA) and travels inside
every task call, so an engine in a worker process, a forked child or a cluster node records
into the same server as the flow that sent it. Nothing is read from process globals or the
environment on the way: a flow resolves its services once, when it starts.

Resolving a `RunServices` in a process gives a reporter bound to a recorder (`api.recorder_for`):

- in the flow's own process, the process's recorder: the run's records join one FIFO with the
  flow's, so they reach the server in order, and the flow's end waits for them (`flush`);
- anywhere else, a client of the same server. That reporter first re-announces the run and
  re-sends the states the flow already recorded (idempotent by transition id; whichever
  copy arrives second is ignored). The outcome goes back without waiting for the worker's
  records to be committed: it carries the attempt's states, and at the flow's end
  `confirm_recorded_away` re-sends, from the flow's copy, the states of any run the service
  does not show as the flow saw it end (a worker still sending, or killed first). The flow's
  own durability wait then covers them. Only an attempt that ran subflows on the worker waits
  (`settle`): their records exist nowhere else. If those cannot be made durable the outcome
  says so and the flow raises `RecordingError` naming the run.

The api package (grpc, pydantic, msgpack) is imported on first use, not at `import headwater`,
to keep a program's start fast.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from . import secret_masking
from .runs import FlowRun, Run, TaskRun, uuid_from_int
from .states import State

if TYPE_CHECKING:
    from ..api import Recorder, RecorderTarget, StateClient

FLUSH_TIMEOUT = 60.0
# The committer thread gives up the GIL for each SQLite call and, while the flow's thread is
# busy, gets it back only at the interpreter's switch interval (5 ms): it falls behind and
# the flow ends waiting on a long final flush. Yielding the GIL once every 64 new runs lets
# it keep pace: recorded throughput rose by a third to a half (benchmarks/workloads/recording.py).
_YIELD_EVERY_MASK = 63
_CATCH_UP_SECONDS = 0.002
#: States a flow sets on a run after handing it to a runner (cancelled while queued, crashed
#: by an interrupt) take transition indexes from here, so they never share an id with a state
#: the worker recorded for the same run from its own copy of the history.
LATE_INDEX_BASE = 1 << 24
_JSON_ATOMS = (str, int, float, bool, type(None))
_MAX_REPR = 1000
_MAX_DEPTH = 8
_TOO_DEEP = f"<nested deeper than {_MAX_DEPTH} levels>"

_tuple_new = tuple.__new__


def recording_enabled() -> bool:
    return os.environ.get("HEADWATER_RECORD", "1").strip().lower() not in ("0", "false", "no", "off")


class RunServices:
    """Where a run's orchestration services are; picklable, resolved lazily in each process.

    `target` is (URL, token, TLS CA path) of the state service, or None when recording is off.
    """

    __slots__ = ("target", "_reporter", "_generation")

    def __init__(self, target: RecorderTarget | None) -> None:
        self.target = target
        self._reporter: RunReporter | None = None
        self._generation = -1

    def __reduce__(self) -> tuple[Any, ...]:
        return (RunServices, (self.target,))  # the resolved reporter stays in this process

    def reporter(self) -> RunReporter | None:
        """The reporter for these services in this process (None when recording is off)."""
        reporter = self._reporter
        if reporter is not None and self._generation == _fork_generation:
            return reporter
        if self.target is None:
            return None
        self._reporter, self._generation = _reporter_for(self.target), _fork_generation
        return self._reporter

    def client(self, timeout: float) -> StateClient:
        """A client of the state service, for the reads a flow makes at its end."""
        from pathlib import Path

        from ..api import StateClient

        assert self.target is not None, "recording is off: there is no state service"
        url, token, tls_ca = self.target
        return StateClient(url, token=token, tls_ca=Path(tls_ca) if tls_ca else None,
                           timeout=timeout, retry_for=5.0)  # fmt: skip

    def __repr__(self) -> str:
        url = self.target[0] if self.target else None
        return f"RunServices(url={url!r})"


NO_SERVICES = RunServices(None)

_lock = threading.Lock()
_here: tuple[Any, RunServices] | None = None  # (this process's recorder, its services)
_reporters: weakref.WeakKeyDictionary[Any, RunReporter] = weakref.WeakKeyDictionary()
# Bumped in a forked child: a reporter resolved before the fork is bound to the parent's
# recorder, whose thread did not survive it. Cheaper to compare than os.getpid() per task.
_fork_generation = 0
# (host, pid) of this process, as every run record it makes says; None until first asked
# for, and again in a forked child (`_process_here`).
_process: tuple[str, int] | None = None


def _after_fork_in_child() -> None:
    global _lock, _here, _fork_generation, _process
    _lock = threading.Lock()
    _here = None
    _reporters.clear()
    _fork_generation += 1
    _process = None


def _process_here() -> tuple[str, int]:
    """This process's host name and pid, worked out once per process."""
    global _process
    _process = (clean_text(socket.gethostname()), os.getpid())
    return _process


os.register_at_fork(after_in_child=_after_fork_in_child)


def services_here() -> RunServices:
    """The services a new top-level run in this process uses: this process's recorder (the
    embedded server, or `HEADWATER_API_URL`), or none when `HEADWATER_RECORD=0`."""
    if not recording_enabled():
        return NO_SERVICES
    from ..api import get_recorder, recorder_target  # deferred: see the module docstring

    recorder = get_recorder()
    here = _here
    if here is not None and here[0] is recorder:
        return here[1]
    return _remember_here(recorder, RunServices(recorder_target()))


def _remember_here(recorder: Any, services: RunServices) -> RunServices:
    global _here
    with _lock:
        _here = (recorder, services)
    return services


def _reporter_for(target: RecorderTarget) -> RunReporter:
    from ..api import recorder_for

    recorder, own = recorder_for(target)
    with _lock:
        reporter = _reporters.get(recorder)
        if reporter is None:
            reporter = (RunReporter if own else RemoteReporter)(recorder)
            _reporters[recorder] = reporter
    return reporter


class RunReporter:
    """Turns run records and state changes into the recorder's records. Called as
    `reporter(run, state)` right after `set_state` appended `state` to `run.history`."""

    #: True where the flow's own recorder is used: nothing to re-announce or settle.
    home = True

    def __init__(self, recorder: Recorder) -> None:
        from ..api import FlowRunRecord, StateRecord, TaskRunRecord

        self.recorder = recorder
        self._flow_record = FlowRunRecord
        self._task_record = TaskRunRecord
        self._state_record = StateRecord
        self._state_changed = recorder.state_changed
        self._behind = recorder.behind
        self._heartbeats = _Heartbeats(recorder)
        self._announced = 0

    def __call__(self, run: Run, state: State) -> None:
        # Three of these per task run: `tuple.__new__` skips the NamedTuple's Python-level
        # __new__, and the record is appended as is (the recorder batches it later).
        history_length = len(run.history)
        if history_length == 1:
            self._announce(run, state)
            self._announced += 1
            if not self._announced & _YIELD_EVERY_MASK:
                # Behind: pause long enough for the committer to take a group (a flow that
                # runs ahead of its recording only moves the work into its final flush).
                time.sleep(_CATCH_UP_SECONDS if self._behind() else 0)
        self._send(run.id, run.kind, state, history_length)

    def late(self, run: Run, state: State) -> None:
        """Report a state the flow set after handing the run over (see LATE_INDEX_BASE)."""
        self._send(run.id, run.kind, state, LATE_INDEX_BASE + len(run.history))

    def backfill(self, run_id: UUID, states: Sequence[State]) -> None:
        """Re-send a task run's states, numbered as the worker that set them numbered them
        (by position in its history), so a copy the service already has is ignored."""
        for index, state in enumerate(states, start=1):
            self._send(run_id, "task", state, index)

    def _send(self, run_id: UUID, kind: str, state: State, index: int) -> None:
        message = state.message  # state names come from a fixed vocabulary; messages do not
        if message is not None and not message.isascii():
            message = clean_text(message)
        self._state_changed(
            _tuple_new(
                self._state_record,
                (
                    run_id, kind, state.type._value_, state.name, message, state.ts,
                    _transition_id(run_id, index), False,
                ),
            )
        )

    def _announce(self, run: Run, state: State, moved: int = 0) -> None:
        # Text is made valid UTF-8 here, where records are made (see `clean_text`): a record
        # the server cannot store is lost, and with it the run. The record says where this
        # process is; `moved`, for which attempt the run moved here (`TaskRunRecord.moved`).
        host, pid = _process or _process_here()
        name, tags = run.name, run.tags
        if tags:
            tags = tuple(clean_text(tag) for tag in tags)
        if isinstance(run, TaskRun):
            task_name = run.task_name
            if not (name.isascii() and task_name.isascii()):
                name, task_name = clean_text(name), clean_text(task_name)
            self.recorder.task_run_created(
                _tuple_new(
                    self._task_record,
                    (
                        run.id, run.flow_run_id, name, task_name, tags, run.upstream, state.ts,
                        host, pid, moved,
                    ),
                )
            )
        else:
            assert isinstance(run, FlowRun)
            self.recorder.flow_run_created(
                self._flow_record(
                    run.id,
                    clean_text(name),
                    clean_text(run.flow_name),
                    json_safe(run.parameters),
                    run.parent_flow_run_id,
                    run.parent_task_run_id,
                    tags,
                    state.ts,
                    host,
                    pid,
                )
            )

    def adopt(self, run: Run) -> None:
        """Start reporting a run whose earlier states another process recorded."""

    def settle(self, run_id: UUID) -> str | None:
        """Make run `run_id`'s records (and those of the subflows it ran) durable before its
        outcome leaves this process; None when they are, else why not. The flow's own recorder
        is flushed at the flow's end instead."""
        return None

    def flow_started(self, flow_run_id: UUID) -> None:
        self._heartbeats.add(flow_run_id)

    def flow_finished(self, flow_run_id: UUID) -> None:
        self._heartbeats.discard(flow_run_id)

    def flush(self, run_id: UUID, timeout: float = FLUSH_TIMEOUT) -> None:
        """Wait until everything recorded so far is committed; raise `RecordingError` naming
        the lost runs among `run_id` and the runs it owns, whichever flush saw them dropped."""
        self.recorder.flush(timeout, runs=(run_id,))


class RemoteReporter(RunReporter):
    """A reporter away from the flow's process: see the module docstring."""

    home = False
    _flows_announced = 0  # subflow runs announced by this process, and how many were flushed
    _flows_settled = 0

    def adopt(self, run: Run) -> None:
        if not run.history:
            return
        # The attempt about to start here: the ones before it are counted already.
        self._announce(run, run.history[0], moved=run.run_count + 1)
        for index, state in enumerate(run.history, start=1):
            self._send(run.id, run.kind, state, index)

    def _announce(self, run: Run, state: State, moved: int = 0) -> None:
        if not isinstance(run, TaskRun):
            self._flows_announced += 1
        super()._announce(run, state, moved)

    def settle(self, run_id: UUID) -> str | None:
        """Waits only when the attempt ran subflows here: their records exist nowhere else.
        A task run's own states travel back in its outcome, and the flow re-sends whichever
        did not arrive (`confirm_recorded_away`), so the outcome need not wait for them."""
        from ..api import RecordingError

        announced = self._flows_announced
        if announced == self._flows_settled:
            return None
        try:
            self.recorder.flush(FLUSH_TIMEOUT, runs=(run_id,))
        except RecordingError as exc:
            return str(exc)
        self._flows_settled = announced
        return None


def confirm_recorded_away(
    services: RunServices, reporter: RunReporter, flow_run_id: UUID, away: Mapping[UUID, Sequence[State]]
) -> None:
    """Make sure the states that workers recorded for the task runs of `flow_run_id` reached
    the state service, re-sending from the flow's copy those that did not.

    A worker does not wait for its records to be committed before returning an outcome (a
    round trip per task would halve a cluster's throughput). The outcome carries the states,
    so the flow holds a copy of each. At the flow's end one read says which task runs the
    service shows in a state other than the one the flow adopted: a worker still sending, or
    one that died before it could. Their states are sent again through the flow's own
    recorder under the same transition ids, so whichever copy comes second is ignored, and the
    flow's flush makes them durable (or names them in `RecordingError`)."""
    if not away or services.target is None:
        return
    stored = _stored_states(services, flow_run_id)
    for run_id, states in away.items():
        final = states[-1]
        if stored.get(run_id) != (final.type.value, final.name):
            reporter.backfill(run_id, states)


def _stored_states(services: RunServices, flow_run_id: UUID) -> dict[UUID, tuple[str | None, str | None]]:
    """Task run id -> (state type, name) as the service has them; empty if it cannot say."""
    from ..api import StateServiceError

    try:
        with services.client(timeout=30.0) as client:
            runs = client.list_task_runs(flow_run_id)
    except StateServiceError:
        return {}  # then every run is re-sent, and the flush says whether it could be
    return {run.id: (run.state_type, run.state_name) for run in runs}


def refusal(services: RunServices, reporter: RunReporter, run: FlowRun) -> str | None:
    """Why the state service refused states of the flow run `run`, or None if it took them all.

    Call after a flush: refusals come back with the acknowledgements. The usual cause is
    fencing: the server declared the run CRASHED (its heartbeats stopped reaching it) and so
    refuses whatever the run reports after. The server's own reason is read back only then."""
    refused = [r for r in reporter.recorder.rejections() if r.run_id == run.id]
    if not refused:
        return None
    crash = _recorded_crash(services, run.id)
    if crash is not None:
        return (
            f"flow run {run.name!r} ({run.id}) was declared Crashed by the state service "
            f"({crash}); it refused the run's later states, so its result is not recorded"
        )
    return (
        f"the state service refused states of flow run {run.name!r} ({run.id}): "
        f"{refused[-1].reason}; its result is not recorded"
    )


def _recorded_crash(services: RunServices, run_id: UUID) -> str | None:
    """The message of the CRASHED state the server recorded for `run_id`, if any."""
    if services.target is None:
        return None
    from ..api import StateServiceError

    try:
        with services.client(timeout=5.0) as client:
            history = client.read_history(run_id)
    except StateServiceError:
        return None
    crash = next((s for s in reversed(history) if s.type == "CRASHED"), None)
    return None if crash is None else crash.message or "no reason given"


def _transition_id(run_id: UUID, index: int) -> UUID:
    """A unique, stable id for the `index`-th state of a run: the run id with the index folded
    into its top bits, so no random draw per state and a re-sent state keeps its id. A run
    id's 128-bit int XOR a small shifted index is always in range (`uuid_from_int`)."""
    return uuid_from_int(run_id.int ^ (index << 96))


def json_safe(value: Any, depth: int = 0) -> Any:
    """Parameters as JSON-safe data: containers kept to `_MAX_DEPTH` levels, anything else by
    its (bounded) repr, and text as valid UTF-8, a secret loaded in this process masked. Never raises: a container nested deeper than
    that becomes a marker (its repr would recurse as deep as it goes, and a 10,000-deep list
    raised RecursionError before the flow ran), and an object whose repr fails a note saying so."""
    if isinstance(value, _JSON_ATOMS):
        if not isinstance(value, str):
            return value
        if secret_masking._ordered:  # a secret loaded here is never recorded as a parameter
            value = secret_masking.mask(value)
        return clean_text(value if len(value) <= _MAX_REPR else value[:_MAX_REPR])
    if isinstance(value, (list, tuple, dict)):
        if depth >= _MAX_DEPTH:
            return _TOO_DEEP
        if isinstance(value, dict):
            return {
                clean_text(str(key)): json_safe(item, depth + 1)
                for key, item in list(value.items())[:1000]
            }
        return [json_safe(item, depth + 1) for item in value[:1000]]
    try:
        text = repr(value)
    except Exception as exc:  # RecursionError from a deep structure inside, or a broken __repr__
        return f"<{type(value).__name__} object: repr failed with {type(exc).__name__}>"
    if secret_masking._ordered:
        text = secret_masking.mask(text)
    return clean_text(text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "...")


def clean_text(text: str) -> str:
    """`text` as valid Unicode for the state service: a lone surrogate (from a filename decoded
    with `surrogateescape`, say) cannot be encoded as UTF-8 and becomes U+FFFD; a surrogate pair
    becomes the character it stands for. The usual ASCII text costs one `isascii()`."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


class _Heartbeats:
    """One daemon thread that says "still alive" for every running flow run of the process."""

    def __init__(self, recorder: Recorder) -> None:
        from ..api import get_settings

        self._recorder = recorder
        self._interval = get_settings().heartbeat_interval_seconds
        self._running: set[UUID] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, flow_run_id: UUID) -> None:
        self._running.add(flow_run_id)
        self._recorder.heartbeat(flow_run_id)
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="headwater-heartbeat", daemon=True)
            self._thread.start()

    def discard(self, flow_run_id: UUID) -> None:
        self._running.discard(flow_run_id)

    def _beat(self) -> None:
        while not self._wake.wait(self._interval):
            for flow_run_id in list(self._running):
                self._recorder.heartbeat(flow_run_id)
