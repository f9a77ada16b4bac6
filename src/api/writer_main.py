"""The writer process's loop: `python -m headwater.api.writer_main DB_PATH SYNCHRONOUS`.

Started by `writer_process.WriterProcess`, which explains why it exists. It opens its own
`Storage` on the database, says `[0, "ready"]` (or why it could not) on stdout, then answers
each group read from stdin, `[group, now, [batch_body, ...]]`, with `[group, "ok", [row per
batch]]` (a row is `["ok", ack_body]` or `["error", name, message]`) once the group is
committed, or `[group, "failed", name, message]` when the whole transaction failed. It exits
when stdin closes. A batch it cannot decode fails alone.

Its input is trusted: the rows were made by `codec.batch_body` in the process that started
this one, over a pipe only the two share, so they are turned back into records without the
service's validation (which cost 14 µs a task, more than half of what committing it does),
and a task run's id and its states' run and transition ids stay the 16 raw bytes storage
writes (`records.as_uuid`): making UUIDs of them cost another 6 µs a task.

Groups that wait in the pipe together are committed in one transaction, as the committer
groups what waits in its queue: the parent keeps two groups in flight, and a transaction
per group would commit the same records in more, smaller transactions.
"""

from __future__ import annotations

import select
import signal
import sys
from pathlib import Path
from typing import Any
from uuid import UUID, SafeUUID

import msgpack

from . import codec
from .log_records import LogRecord
from .records import Batch, BatchResult, FlowRunRecord, StateRecord, TaskRunRecord
from .storage import Storage
from .writer_process import error_row, read_frame, write_frame

_IN, _OUT = 0, 1  # stdin and stdout, as file descriptors


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the flow's to handle
    path, synchronous = Path(argv[0]), argv[1]
    try:
        storage = Storage(path, synchronous=synchronous)
    except Exception as exc:
        write_frame(_OUT, codec.pack((0, "cannot open", type(exc).__name__, str(exc))))
        return 1
    write_frame(_OUT, codec.pack((0, "ready")))
    try:
        while (frame := read_frame(_IN)) is not None:
            frames = [frame]
            while select.select([_IN], [], [], 0)[0] and (more := read_frame(_IN)) is not None:
                frames.append(more)
            groups = [msgpack.unpackb(f, raw=False) for f in frames]
            for answer in _answers(storage, groups):
                write_frame(_OUT, codec.pack(answer))
    except BrokenPipeError:
        return 0  # the flow's process went away: everything it was told is committed
    finally:
        storage.close()
    return 0


def _answers(storage: Storage, groups: list[list[Any]]) -> list[tuple[Any, ...]]:
    """Commit `groups` ([group, now, bodies] each) in one transaction; an answer per group."""
    decoded: list[list[Batch | Exception]] = []
    for _, _, bodies in groups:
        decoded.append([])
        for body in bodies:
            try:
                decoded[-1].append(decode_trusted(body))
            except Exception as exc:
                decoded[-1].append(exc)
    batches = [b for each in decoded for b in each if isinstance(b, Batch)]
    try:
        applied = iter(storage.apply_batches(batches, groups[-1][1]) if batches else [])
    except Exception as exc:
        return [(group, "failed", type(exc).__name__, str(exc)) for group, _, _ in groups]
    answers: list[tuple[Any, ...]] = []
    for (group, _, _), each in zip(groups, decoded):
        rows: list[list[Any]] = []
        for item in each:
            result: BatchResult | Exception = item if isinstance(item, Exception) else next(applied)
            rows.append(error_row(result) if isinstance(result, Exception)
                        else ["ok", codec.ack_body(0, result)])
        answers.append((group, "ok", rows))
    return answers


_new_object = object.__new__
_set_attribute = object.__setattr__
_KINDS = ("flow", "task")
_UNKNOWN = SafeUUID.unknown  # an enum member is a property lookup each time it is named


def _uuid(raw: bytes) -> UUID:
    """`UUID(bytes=raw)` without `UUID.__init__`'s checks (the bytes are a UUID's)."""
    value = _new_object(UUID)
    _set_attribute(value, "int", int.from_bytes(raw))
    _set_attribute(value, "is_safe", _UNKNOWN)
    return value


def _maybe(raw: bytes | None) -> UUID | None:
    return None if raw is None else _uuid(raw)


_tuple_new = tuple.__new__


def _task_record(row: list[Any]) -> TaskRunRecord:
    """A wire row as the record, made with `tuple.__new__` from the row itself (every field is
    there): a NamedTuple's own `__new__` is Python code, 5% of the child's time. Raw ids
    (module docstring); an upstream id becomes text in storage: a UUID."""
    row[4] = tuple(row[4])
    if row[5]:
        row[5] = {k: tuple(map(_uuid, v)) for k, v in row[5].items()}
    return _tuple_new(TaskRunRecord, row)


def _state_record(row: list[Any]) -> StateRecord:
    row[1] = _KINDS[row[1]]
    return _tuple_new(StateRecord, row)


def decode_trusted(body: bytes) -> Batch:
    """The batch `codec.batch_body` encoded (as `codec.decode_batch`, without validation)."""
    seq, flows, tasks, states, beats, *logs = msgpack.unpackb(body, raw=False)
    return Batch(
        tuple(
            FlowRunRecord(_uuid(r[0]), r[1], r[2], r[3], _maybe(r[4]), _maybe(r[5]), tuple(r[6]),
                          r[7], *r[8:])
            for r in flows
        ),
        tuple([_task_record(r) for r in tasks]),
        tuple([_state_record(r) for r in states]),
        tuple(map(_uuid, beats)),
        tuple(LogRecord(_uuid(r[0]), _maybe(r[1]), *r[2:]) for r in (logs[0] if logs else ())),
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
