"""The wire codec: msgpack bytes <-> pydantic models <-> dataclasses, in both directions.

This is the only module that converts between wire models and the dataclasses of `records.py`.
Decoding is defensive (byte limit, msgpack container limits, no ext types, pydantic
validation) and raises `InvalidPayload` or `PayloadTooLarge` naming what is wrong; nothing a
client sends is ever unpickled. Encoding on the client clamps what the server would refuse
(over-long messages, huge or deeply nested parameters) so one odd record cannot poison a batch.
"""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

import msgpack
from pydantic import ValidationError

from ..cache.entries import Entry, RunNote, Stats
from . import models as m
from .errors import InvalidPayload, PayloadTooLarge
from .log_records import LogLine, LogPage, LogRecord
from .records import (
    Batch,
    BatchResult,
    FlowRunInfo,
    FlowRunRecord,
    Rejection,
    RunKind,
    RunFilter,
    StateInfo,
    StateRecord,
    TaskRunInfo,
    TaskRunRecord,
    Unstorable,
)
from .slot_records import Grant, Holder, HolderInfo, LimitInfo

MAX_UNARY_BYTES = 1 * 1024 * 1024
MAX_BATCH_BYTES = 12 * 1024 * 1024
#: gRPC's own receive limit, a little above ours so ours produces the clearer message.
MAX_GRPC_MESSAGE = 16 * 1024 * 1024
assert m.MAX_CACHE_BODY < MAX_GRPC_MESSAGE, "a cache body must fit in one gRPC message"
_KINDS: tuple[RunKind, RunKind] = ("flow", "task")

W = TypeVar("W", bound=m.Wire)


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes, *, max_bytes: int = MAX_UNARY_BYTES) -> Any:
    """Decode msgpack defensively: size first, then container limits, no ext types."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"message of {len(data)} bytes is over the {max_bytes}-byte limit")
    try:
        return msgpack.unpackb(
            data, raw=False, strict_map_key=True, max_ext_len=0
        )
    except msgpack.exceptions.StackError:
        raise InvalidPayload("malformed msgpack: nested too deeply") from None
    except (ValueError, TypeError, msgpack.exceptions.UnpackException) as exc:
        raise InvalidPayload(f"malformed msgpack: {exc or type(exc).__name__}") from None


def validate(model: type[W], obj: Any) -> W:
    """Validate a decoded body into `model`; the error names the first bad fields."""
    if not isinstance(obj, dict):
        raise InvalidPayload(f"{model.__name__}: expected a map, got {type(obj).__name__}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise InvalidPayload(f"{model.__name__}: {_describe(exc)}") from None
    except RecursionError:
        raise InvalidPayload(f"{model.__name__}: nested too deeply") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    extra = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(parts) + extra


def decode(model: type[W], data: bytes, *, max_bytes: int = MAX_UNARY_BYTES) -> W:
    return validate(model, unpack(data, max_bytes=max_bytes))


# -- small helpers ---------------------------------------------------------------------------


def _b(value: UUID | None) -> bytes | None:
    return None if value is None else value.bytes


def _u(value: bytes | None) -> UUID | None:
    return None if value is None else UUID(bytes=value)


def _clamp_message(message: str | None) -> str | None:
    if message is not None and len(message) > m.MAX_MESSAGE:
        return message[: m.MAX_MESSAGE - 20] + "... [truncated]"
    return message


def _n(name: str) -> str:
    return name if len(name) <= m.MAX_NAME else name[: m.MAX_NAME]


def _host(host: str | None) -> str | None:
    return None if host is None else _n(host)


def _tags(tags: tuple[str, ...]) -> list[str]:
    return [_n(t) for t in tags[: m.MAX_TAGS]]


def _clamp_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters the server would refuse become a short note instead of failing the batch."""
    if len(parameters) > m.MAX_PARAMETERS:
        return {"__headwater__": f"{len(parameters)} parameters, too many to record"}
    try:
        m.check_depth(parameters)
        size = len(pack(parameters))
    except (ValueError, TypeError) as exc:
        return {"__headwater__": f"parameters not recorded: {exc}"}
    if size > MAX_UNARY_BYTES // 2:
        return {"__headwater__": f"parameters of {size} bytes, too large to record"}
    return parameters


# -- unary requests: client encodes, server decodes --------------------------------------------


def flow_run_body(rec: FlowRunRecord) -> dict[str, Any]:
    return {
        "id": rec.id.bytes, "name": rec.name, "flow_name": rec.flow_name,
        "parameters": _clamp_parameters(rec.parameters),
        "parent_flow_run_id": _b(rec.parent_flow_run_id),
        "parent_task_run_id": _b(rec.parent_task_run_id), "tags": list(rec.tags),
        "created": float(rec.created), "host": rec.host, "pid": rec.pid,
    }


def flow_run_record(body: m.FlowRunIn) -> FlowRunRecord:
    return FlowRunRecord(
        UUID(bytes=body.id), body.name, body.flow_name, dict(body.parameters),
        _u(body.parent_flow_run_id), _u(body.parent_task_run_id), tuple(body.tags), body.created,
        body.host, body.pid,
    )


def task_run_body(rec: TaskRunRecord) -> dict[str, Any]:
    return {
        "id": rec.id.bytes, "flow_run_id": _b(rec.flow_run_id), "name": rec.name,
        "task_name": rec.task_name, "tags": list(rec.tags),
        "upstream": {k: [u.bytes for u in v] for k, v in rec.upstream.items()},
        "created": float(rec.created), "host": rec.host, "pid": rec.pid, "moved": rec.moved,
    }


def task_run_record(body: m.TaskRunIn) -> TaskRunRecord:
    upstream = {k: tuple(UUID(bytes=u) for u in v) for k, v in body.upstream.items()}
    return TaskRunRecord(
        UUID(bytes=body.id), _u(body.flow_run_id), body.name, body.task_name, tuple(body.tags),
        upstream, body.created, body.host, body.pid, int(body.moved),
    )


def state_body(rec: StateRecord) -> dict[str, Any]:
    return {
        "run_id": rec.run_id.bytes, "run_kind": rec.run_kind, "type": rec.type, "name": rec.name,
        "message": _clamp_message(rec.message), "timestamp": float(rec.timestamp),
        "transition_id": rec.transition_id.bytes, "retry": rec.retry,
    }


def state_record(body: m.StateIn) -> StateRecord:
    return StateRecord(
        UUID(bytes=body.run_id), body.run_kind, body.type, body.name, body.message,
        body.timestamp, UUID(bytes=body.transition_id), body.retry,
    )


def filter_body(flt: RunFilter) -> dict[str, Any]:
    return {
        "state_type": flt.state_type, "flow_name": flt.flow_name,
        "parent_flow_run_id": _b(flt.parent_flow_run_id), "limit": flt.limit,
    }


def run_filter(body: m.ListFlowRunsIn) -> RunFilter:
    return RunFilter(body.state_type, body.flow_name, _u(body.parent_flow_run_id), body.limit)


# -- responses: server encodes, client decodes ------------------------------------------------


def state_info_body(info: StateInfo) -> dict[str, Any]:
    return {
        "run_id": info.run_id.bytes, "type": info.type, "name": info.name,
        "message": info.message, "timestamp": info.timestamp,
        "transition_id": info.transition_id.bytes,
    }


def state_info(out: m.StateOut) -> StateInfo:
    return StateInfo(
        UUID(bytes=out.run_id), out.type, out.name, out.message, out.timestamp,
        UUID(bytes=out.transition_id),
    )


def flow_run_info_body(info: FlowRunInfo) -> dict[str, Any]:
    return {
        "id": info.id.bytes, "name": info.name, "flow_name": info.flow_name,
        "parameters": info.parameters, "parent_flow_run_id": _b(info.parent_flow_run_id),
        "parent_task_run_id": _b(info.parent_task_run_id), "tags": list(info.tags),
        "created": info.created, "start_time": info.start_time, "end_time": info.end_time,
        "state_type": info.state_type, "state_name": info.state_name,
        "last_heartbeat": info.last_heartbeat, "task_run_count": info.task_run_count,
        "host": info.host, "pid": info.pid,
    }


def flow_run_info(out: m.FlowRunOut) -> FlowRunInfo:
    return FlowRunInfo(
        UUID(bytes=out.id), out.name, out.flow_name, dict(out.parameters),
        _u(out.parent_flow_run_id), _u(out.parent_task_run_id), tuple(out.tags), out.created,
        out.start_time, out.end_time, out.state_type, out.state_name, out.last_heartbeat,
        out.task_run_count, out.host, out.pid,
    )


def task_run_info_body(info: TaskRunInfo) -> dict[str, Any]:
    return {
        "id": info.id.bytes, "flow_run_id": _b(info.flow_run_id), "name": info.name,
        "task_name": info.task_name, "tags": list(info.tags),
        "upstream": {k: [u.bytes for u in v] for k, v in info.upstream.items()},
        "created": info.created, "start_time": info.start_time, "end_time": info.end_time,
        "state_type": info.state_type, "state_name": info.state_name,
        "host": info.host, "pid": info.pid,
    }


def task_run_info(out: m.TaskRunOut) -> TaskRunInfo:
    upstream = {k: tuple(UUID(bytes=u) for u in v) for k, v in out.upstream.items()}
    return TaskRunInfo(
        UUID(bytes=out.id), _u(out.flow_run_id), out.name, out.task_name, tuple(out.tags),
        upstream, out.created, out.start_time, out.end_time, out.state_type, out.state_name,
        out.host, out.pid,
    )


# -- the recorder stream: compact arrays -------------------------------------------------------


def batch_body(seq: int, batch: Batch) -> bytes:
    """One recorder batch as `[seq, flows, tasks, states, heartbeats, logs]` of positional
    rows; `logs` only when there are log lines (a server before schema v6 takes the rest).

    Over-long names and tags are cut here: one odd record must not get a whole batch refused.
    """
    flows = [
        (r.id.bytes, _n(r.name), _n(r.flow_name), _clamp_parameters(r.parameters),
         _b(r.parent_flow_run_id), _b(r.parent_task_run_id), _tags(r.tags), float(r.created),
         _host(r.host), r.pid)
        for r in batch.flows
    ]
    # Tasks and states are most of a busy batch (four records a task run): unpacked by
    # position and their ids' bytes taken straight from the int, no property or helper call
    # per field unless a value needs cutting (encoding was ~5 µs a task, on the GIL the flow's
    # threads share).
    most = m.MAX_NAME
    tasks = [
        (rid.int.to_bytes(16, "big"), None if fid is None else fid.int.to_bytes(16, "big"),
         name if len(name) <= most else name[:most], task_name if len(task_name) <= most else task_name[:most],
         _tags(tags) if tags else [],
         {_n(k): [u.bytes for u in v[: m.MAX_UPSTREAM]] for k, v in upstream.items()} if upstream else {},
         float(created), _host(host), pid, moved)
        for rid, fid, name, task_name, tags, upstream, created, host, pid, moved in batch.tasks
    ]
    states = [
        (rid.int.to_bytes(16, "big"), 0 if kind == "flow" else 1,
         type_ if len(type_) <= most else type_[:most], name if len(name) <= most else name[:most],
         message if message is None or len(message) <= m.MAX_MESSAGE else _clamp_message(message),
         float(ts), tid.int.to_bytes(16, "big"), retry)
        for rid, kind, type_, name, message, ts, tid, retry in batch.states
    ]
    beats = [h.bytes for h in batch.heartbeats]
    if not batch.logs:
        return pack((seq, flows, tasks, states, beats))
    logs = [
        (r.flow_run_id.bytes, _b(r.task_run_id), int(r.level), float(r.timestamp), _n(r.logger),
         r.message, r.exception)
        for r in batch.logs
    ]
    return pack((seq, flows, tasks, states, beats, logs))


def decode_batch(data: bytes) -> tuple[int, Batch]:
    obj = unpack(data, max_bytes=MAX_BATCH_BYTES)
    if not isinstance(obj, list) or len(obj) not in (5, 6):
        raise InvalidPayload(
            "RecordBatchIn: expected an array [seq, flows, tasks, states, heartbeats, logs?]"
        )
    body = validate(m.RecordBatchIn, dict(zip(m.RecordBatchIn.FIELDS, obj)))
    # r[8:] / r[7:]: where the run is; absent from a client before schema v4 (the defaults).
    flows = tuple(
        FlowRunRecord(
            UUID(bytes=r[0]), r[1], r[2], r[3], _u(r[4]), _u(r[5]), tuple(r[6]), r[7], *r[8:]
        )
        for r in body.flows
    )
    tasks = tuple(
        TaskRunRecord(
            UUID(bytes=r[0]), _u(r[1]), r[2], r[3], tuple(r[4]),
            {k: tuple(UUID(bytes=u) for u in v) for k, v in r[5].items()}, r[6], *r[7:],
        )
        for r in body.tasks
    )
    states = tuple(
        StateRecord(UUID(bytes=r[0]), _KINDS[r[1]], r[2], r[3], r[4], r[5], UUID(bytes=r[6]), r[7])
        for r in body.states
    )
    beats = tuple(UUID(bytes=h) for h in body.heartbeats)
    logs = tuple(
        LogRecord(UUID(bytes=r[0]), _u(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in body.logs
    )
    return body.seq, Batch(flows, tasks, states, beats, logs)


def ack_body(seq: int, result: BatchResult) -> bytes:
    """`[seq, applied, rejections]`, plus `unstored` only when some records were not stored."""
    rejected = [(r.run_id.bytes, r.transition_id.bytes, r.reason) for r in result.rejections]
    if not result.unstored:
        return pack((seq, result.applied, rejected))
    unstored = [(u.run_id.bytes, u.reason) for u in result.unstored]
    return pack((seq, result.applied, rejected, unstored))


def decode_ack(data: bytes) -> tuple[int, BatchResult]:
    obj = unpack(data, max_bytes=MAX_GRPC_MESSAGE)
    if not isinstance(obj, list) or len(obj) not in (3, 4):
        raise InvalidPayload("BatchAckOut: expected an array [seq, applied, rejections, unstored?]")
    ack = validate(m.BatchAckOut, dict(zip(("seq", "applied", "rejections", "unstored"), obj)))
    rejections = tuple(
        Rejection(UUID(bytes=run), UUID(bytes=tid), reason) for run, tid, reason in ack.rejections
    )
    unstored = tuple(Unstorable(UUID(bytes=run), reason) for run, reason in ack.unstored)
    return ack.seq, BatchResult(ack.applied, rejections, unstored)


# -- run logs: pages and stream messages --------------------------------------------------------


def log_page_body(page: LogPage) -> dict[str, Any]:
    lines = [
        {
            "seq": ln.seq, "flow_run_id": ln.flow_run_id.bytes, "task_run_id": _b(ln.task_run_id),
            "label": ln.label, "level": ln.level, "timestamp": ln.timestamp, "logger": ln.logger,
            "message": ln.message, "exception": ln.exception,
        }
        for ln in page.lines
    ]
    return {"lines": lines, "next_seq": page.next_seq}


def log_page(out: m.LogsOut) -> LogPage:
    lines = tuple(
        LogLine(ln.seq, UUID(bytes=ln.flow_run_id), _u(ln.task_run_id), ln.label, ln.level,
                ln.timestamp, ln.logger, ln.message, ln.exception)
        for ln in out.lines
    )
    return LogPage(lines, out.next_seq)


def uuid_of(value: bytes) -> UUID:
    return UUID(bytes=value)


# -- the result cache: entries and run notes, both ways ----------------------------------------


def entry_body(entry: Entry) -> dict[str, Any]:
    return {
        "key": entry.key, "task": entry.task, "size": entry.size, "created": float(entry.created),
        "expires": None if entry.expires is None else float(entry.expires),
        "components": dict(entry.components), "location": entry.location, "digest": entry.digest,
    }


def entry_of(wire: m.CacheEntryWire) -> Entry:
    return Entry(wire.key, wire.task, wire.size, wire.created, wire.expires, dict(wire.components),
                 wire.location, wire.digest)


def checked_entry(entry: Entry) -> Entry:
    """`entry` (a header a client wrote) if every field has its type and bounds, else
    `InvalidPayload` naming the field."""
    return entry_of(validate(m.CacheEntryWire, entry._asdict()))


def note_body(note: RunNote) -> dict[str, Any]:
    """A run note to send; an over-long task name or reason is cut, so one odd note cannot get
    a whole `CacheRecord` refused."""
    return {
        "run_id": str(note.run_id), "task": _n(note.task), "key": note.key,
        "components": dict(note.components), "outcome": _n(note.outcome),
        "reason": _clamp_message(note.reason) or "", "created": float(note.created),
    }


def note_of(wire: m.RunNoteWire) -> RunNote:
    return RunNote(wire.run_id, wire.task, wire.key, dict(wire.components), wire.outcome,
                   wire.reason, wire.created)


def stats_body(stats: Stats) -> dict[str, Any]:
    return stats._asdict()


def stats_of(out: m.CacheStatsOut) -> Stats:
    return Stats(out.entries, out.bytes, out.hits, out.misses)


# -- concurrency slots -----------------------------------------------------------------------


def holder_body(holder: Holder) -> dict[str, Any]:
    return {
        "label": _n(holder.label), "task_run_id": _b(holder.task_run_id),
        "flow_run_id": _b(holder.flow_run_id), "host": _host(holder.host), "pid": holder.pid,
    }


def holder_of(wire: m.SlotHolderWire) -> Holder:
    return Holder(wire.label, _u(wire.task_run_id), _u(wire.flow_run_id), wire.host or "", wire.pid or 0)


def limit_info_body(info: LimitInfo) -> dict[str, Any]:
    return {
        "name": info.name, "limit": info.limit, "slot_decay_per_second": info.slot_decay_per_second,
        "active": info.active, "waiting": info.waiting, "created": info.created,
        "holders": [
            {
                "lease_id": h.lease_id, "label": h.label, "task_run_id": _b(h.task_run_id),
                "flow_run_id": _b(h.flow_run_id), "host": h.host, "pid": h.pid,
                "occupy": h.occupy, "acquired_at": h.acquired_at, "expires_at": h.expires_at,
            }
            for h in info.holders
        ],
    }


def limit_info(out: m.LimitOut) -> LimitInfo:
    holders = [
        HolderInfo(h.lease_id, h.label, _u(h.task_run_id), _u(h.flow_run_id), h.host, h.pid,
                   h.occupy, h.acquired_at, h.expires_at)
        for h in out.holders
    ]
    return LimitInfo(out.name, out.limit, out.slot_decay_per_second, out.active, out.waiting,
                     holders, out.created)


def grant_body(grant: Grant) -> dict[str, Any]:
    return {"lease_id": grant.lease_id, "expires_at": grant.expires_at}
