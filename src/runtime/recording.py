"""Reporting every run and state change to the state service.

Recording starts with the first flow run (or task run outside a flow) of the process, unless
`HEADWATER_RECORD=0`. From then on a state observer turns each new run into a run record and
each state change into a state record, handed to the api's recorder, which batches them in
the background: a task never waits on the service to say "Running".

A top-level flow run ends with `flush()`: its final state is returned only once every state of
every run it made is durable. If the service cannot make them durable, the flow raises
`RecordingError` naming the unrecorded runs rather than exit as if all were well.

The api package (grpc, pydantic, msgpack) is imported on first use, not at `import headwater`,
to keep a program's start fast.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any
from uuid import UUID, SafeUUID

from .runs import FlowRun, Run, TaskRun, add_state_observer
from .states import State

if TYPE_CHECKING:
    from ..api import Recorder

FLUSH_TIMEOUT = 60.0
# The committer thread gives up the GIL for each SQLite call and, while the flow's thread is
# busy, gets it back only at the interpreter's switch interval (5 ms): it falls behind and
# the flow ends waiting on a long final flush. Yielding the GIL once every 64 new runs lets
# it keep pace: recorded throughput rose by a third to a half (benchmarks/workloads/recording.py).
_YIELD_EVERY_MASK = 63
_JSON_ATOMS = (str, int, float, bool, type(None))
_MAX_REPR = 1000

_tuple_new = tuple.__new__
_new_object = object.__new__
_set_attribute = object.__setattr__

_lock = threading.Lock()
_reporter: _RunReporter | None = None


def recording_enabled() -> bool:
    return os.environ.get("HEADWATER_RECORD", "1").strip().lower() not in ("0", "false", "no", "off")


def ensure_recording() -> _RunReporter | None:
    """Start reporting runs (once per process); None when recording is switched off."""
    if _reporter is not None or not recording_enabled():
        return _reporter
    return _start()


def _start() -> _RunReporter:
    global _reporter
    with _lock:
        if _reporter is None:
            from ..api import get_recorder  # deferred: see the module docstring

            reporter = _RunReporter(get_recorder())
            add_state_observer(reporter)
            _reporter = reporter
    return _reporter


def current_reporter() -> _RunReporter | None:
    return _reporter


class _RunReporter:
    """The state observer: announces each run on its first state, then every state change."""

    def __init__(self, recorder: Recorder) -> None:
        from ..api import FlowRunRecord, StateRecord, TaskRunRecord

        self.recorder = recorder
        self._flow_record = FlowRunRecord
        self._task_record = TaskRunRecord
        self._state_record = StateRecord
        self._state_changed = recorder.state_changed
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
                time.sleep(0)
        run_id = run.id
        self._state_changed(
            _tuple_new(
                self._state_record,
                (
                    run_id, run.kind, state.type.value, state.name, state.message, state.ts,
                    _transition_id(run_id, history_length), False,
                ),
            )
        )

    def _announce(self, run: Run, state: State) -> None:
        if isinstance(run, TaskRun):
            self.recorder.task_run_created(
                _tuple_new(
                    self._task_record,
                    (run.id, run.flow_run_id, run.name, run.task_name, run.tags, run.upstream, state.ts),
                )
            )
        else:
            assert isinstance(run, FlowRun)
            self.recorder.flow_run_created(
                self._flow_record(
                    run.id,
                    run.name,
                    run.flow_name,
                    json_safe(run.parameters),
                    run.parent_flow_run_id,
                    run.parent_task_run_id,
                    run.tags,
                    state.ts,
                )
            )

    def flow_started(self, flow_run_id: UUID) -> None:
        self._heartbeats.add(flow_run_id)

    def flow_finished(self, flow_run_id: UUID) -> None:
        self._heartbeats.discard(flow_run_id)

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> None:
        self.recorder.flush(timeout)


def _transition_id(run_id: UUID, index: int) -> UUID:
    """A unique, stable id for the `index`-th state of a run: the (random) run id with the
    index folded into its top bits, so no random draw per state and a re-sent state keeps
    its id.

    Built without `UUID.__init__`, whose argument checks cost more than the rest of recording a
    state; the value is a run id's 128-bit int XOR a small shifted index, so always in range."""
    tid = _new_object(UUID)
    _set_attribute(tid, "int", run_id.int ^ (index << 96))
    _set_attribute(tid, "is_safe", SafeUUID.unknown)
    return tid


def json_safe(value: Any, depth: int = 0) -> Any:
    """Parameters as JSON-safe data: containers kept, anything else by its (bounded) repr."""
    if isinstance(value, _JSON_ATOMS):
        return value if not isinstance(value, str) or len(value) <= _MAX_REPR else value[:_MAX_REPR]
    if depth < 8:
        if isinstance(value, (list, tuple)):
            return [json_safe(item, depth + 1) for item in value[:1000]]
        if isinstance(value, dict):
            return {str(key): json_safe(item, depth + 1) for key, item in list(value.items())[:1000]}
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


class _Heartbeats:
    """One daemon thread that says "still alive" for every running flow run of the process."""

    def __init__(self, recorder: Recorder) -> None:
        from ..api import HEARTBEAT_INTERVAL

        self._recorder = recorder
        self._interval = HEARTBEAT_INTERVAL
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
