"""The database writer in a process of its own, so committing does not share the runtime's GIL.

The group committer applies every write of a state service (`Storage.apply_batches`). In the
embedded default that is the flow's own process, where the committer thread and the runtime
take turns on one GIL: measured on 2 cores, a flow of 10,000 recorded no-op tasks ran at
16,600 tasks/s, and at 27,500/s with the commits left out. With a second core free, the
commits are better made there: `OffloadingWriter` starts `writer_main` (a child interpreter
holding its own `Storage` on the same database file) and sends it each group as the
recorder's wire rows (`codec.batch_body`, ~3.5 µs a task here, against ~20 µs to commit it),
then waits for its answer with the GIL released.

When: `HEADWATER_WRITER_PROCESS` is `auto` (the default: once `SPAWN_AFTER_RECORDS` records
were committed here, and only with two CPUs or more for this process), `always` (from the
start) or `never`. A hello-world flow never pays for a child; a busy one starts it
within its first thousand tasks, and the committer goes on writing here until the child says
it is ready, so nothing waits for it.

Guarantees are the committer's: a group is acknowledged only once the child committed it,
groups go one at a time in order, and the child writes with the same `synchronous` setting.
If the child dies or stops answering (`ANSWER_TIMEOUT`), the group it had is applied here
and so is everything after: writes are idempotent (a re-sent state is recognised by its
transition id, a re-announced run by its id), so a group the child committed just before
dying is not stored twice. A group the wire cannot carry is applied here too. The child
runs in a session of its own, so a Ctrl-C meant for the flow (which records how it ended)
does not reach it, and it exits when its input closes, which is also what happens when this
process dies.
"""

from __future__ import annotations

import logging
import os
import select
import sqlite3
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import codec
from .errors import DamagedDatabase, InvalidPayload, StorageError
from .records import Batch, BatchResult
from .storage import Storage

log = logging.getLogger(__name__)

#: Records committed in this process before `auto` starts the child.
SPAWN_AFTER_RECORDS = 2_000
#: Seconds to wait for the child's answer to one group before giving up on the child.
ANSWER_TIMEOUT = 120.0
#: Groups with the child at once: it commits one while the next is encoded and sent.
IN_FLIGHT = 2
MODES = ("auto", "always", "never")

_LENGTH = struct.Struct(">I")
#: Exceptions a per-batch result may carry across the pipe, rebuilt by name on this side.
_KNOWN: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (StorageError, DamagedDatabase, InvalidPayload, ValueError, TypeError,
                OverflowError, sqlite3.IntegrityError, sqlite3.OperationalError,
                sqlite3.DataError, sqlite3.DatabaseError, sqlite3.Error)
}  # fmt: skip


def write_frame(fd: int, payload: bytes) -> None:
    """One length-prefixed frame on a pipe (a file descriptor, unbuffered)."""
    view = memoryview(_LENGTH.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view):]


def read_frame(fd: int) -> bytes | None:
    """The next frame from a pipe, or None at the end of the stream."""
    head = _read_exactly(fd, _LENGTH.size)
    if head is None:
        return None
    return _read_exactly(fd, _LENGTH.unpack(head)[0])


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        part = os.read(fd, min(left, 1 << 20))
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def error_row(exc: BaseException) -> list[Any]:
    return ["error", type(exc).__name__, str(exc)]


def rebuild_error(name: str, message: str) -> Exception:
    return _KNOWN.get(name, StorageError)(message)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class WriterGone(Exception):
    """The child died, closed its output or did not answer in time."""


class WriterProcess:
    """One child interpreter running `writer_main` on a database; see the module docstring."""

    def __init__(self, db_path: str, synchronous: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "headwater.api.writer_main", db_path, synchronous],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True,
            start_new_session=True,  # out of the terminal's process group: Ctrl-C is the flow's
        )  # fmt: skip
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._to, self._from = self._proc.stdin.fileno(), self._proc.stdout.fileno()
        _widen(self._to)
        self.ready = False
        self._next_group = 0

    @property
    def pid(self) -> int:
        return self._proc.pid

    def poll_ready(self) -> bool:
        """Whether the child has opened the database (never blocks); raises WriterGone if it
        failed to."""
        if self.ready:
            return True
        if not select.select([self._from], [], [], 0)[0]:
            if self._proc.poll() is not None:
                raise WriterGone(f"writer process exited with status {self._proc.returncode}")
            return False
        frame = read_frame(self._from)
        if frame is None:
            raise WriterGone("writer process closed its output before it was ready")
        answer = codec.unpack(frame)
        if answer != [0, "ready"]:
            raise WriterGone(f"writer process could not open the database: {answer}")
        self.ready = True
        return True

    def send(self, bodies: list[bytes], now: float) -> int:
        """Send one group; returns its number, which `receive` answers in order."""
        self._next_group += 1
        try:
            write_frame(self._to, codec.pack((self._next_group, now, bodies)))
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise WriterGone(f"writer process is gone ({exc})") from exc
        return self._next_group

    def receive(self, group: int) -> list[BatchResult | Exception]:
        """The answer to `group` (the oldest unanswered one); raises the whole transaction's
        error as `Storage.apply_batches` would, or WriterGone."""
        ready, _, _ = select.select([self._from], [], [], ANSWER_TIMEOUT)
        frame = read_frame(self._from) if ready else None
        if frame is None:
            raise WriterGone("writer process did not answer" if not ready else "writer process died")
        answer = codec.unpack(frame)
        if answer[0] != group:
            raise WriterGone(f"writer process answered group {answer[0]}, not {group}")
        if answer[1] == "failed":
            raise rebuild_error(answer[2], answer[3])
        return [_result(row) for row in answer[2]]

    def close(self, timeout: float = 10.0) -> None:
        """End the child after what it has (it exits when its input closes) and reap it."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


def _result(row: list[Any]) -> BatchResult | Exception:
    if row[0] == "error":
        return rebuild_error(row[1], row[2])
    _, result = codec.decode_ack(row[1])
    return result


#: Bytes a pipe holds (Linux `F_SETPIPE_SZ`): a group's frame is written in one go instead of
#: in 64 KiB turns, each of which would wait for the child and then for the GIL again.
_PIPE_BYTES = 1 << 20


def _widen(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    except OSError:
        pass  # above the system's pipe-max-size: the default size works, more slowly


Results = list[BatchResult | Exception]


@dataclass(slots=True)
class Ticket:
    """One group on its way: applied here at once, or sent to the child as group `sent_as`.
    `outcome` is its results, or the exception the whole transaction failed with."""

    batches: Sequence[Batch]
    now: float
    sent_as: int = 0
    outcome: Results | Exception | None = None

    @property
    def done(self) -> bool:
        return self.outcome is not None


class OffloadingWriter:
    """What the group committer writes through: `storage` here, or a `WriterProcess` once
    there is one and it is ready (module docstring). `start` a group, `finish` it for its
    results: up to `IN_FLIGHT` groups are with the child at once, so it commits one while
    the next is encoded and sent, and groups finish in the order they started."""

    def __init__(self, storage: Storage, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(
                f"HEADWATER_WRITER_PROCESS={mode!r} is not one of {', '.join(MODES)}"
            )
        self.storage = storage
        self._mode = "never" if mode == "auto" and usable_cpus() < 2 else mode
        self._records_here = 0
        self.child: WriterProcess | None = None
        self._sent: deque[Ticket] = deque()
        #: Groups the child committed (for tests and statistics).
        self.groups_offloaded = 0
        if self._mode == "always":
            self._spawn()

    def apply_batches(self, batches: Sequence[Batch], now: float) -> Results:
        """`start` and `finish` one group."""
        return self.finish(self.start(batches, now))

    def start(self, batches: Sequence[Batch], now: float) -> Ticket:
        ticket = Ticket(batches, now)
        if self._child_ready() is not None:
            while len(self._sent) >= IN_FLIGHT and self.child is not None:
                self._receive_oldest()
            child = self.child
            if child is not None:
                try:
                    bodies = [codec.batch_body(i, b) for i, b in enumerate(batches)]
                except Exception:  # a record the wire cannot carry: this group is written here
                    bodies = None
                if bodies is not None:
                    try:
                        ticket.sent_as = child.send(bodies, now)
                        self._sent.append(ticket)
                        return ticket
                    except WriterGone as exc:
                        self._give_up(str(exc))
        while self._sent:  # what went to the child commits before this
            self._receive_oldest()
        ticket.outcome = self._apply_here(batches, now)
        return ticket

    def finish(self, ticket: Ticket) -> Results:
        """The group's results once committed; raises what the whole transaction failed with."""
        while ticket.outcome is None:
            self._receive_oldest()
        if isinstance(ticket.outcome, Exception):
            raise ticket.outcome
        return ticket.outcome

    def close(self) -> None:
        while self._sent:
            self._receive_oldest()
        if self.child is not None:
            self.child.close()
            self.child = None

    def _apply_here(self, batches: Sequence[Batch], now: float) -> Results | Exception:
        try:
            results = self.storage.apply_batches(batches, now)
        except Exception as exc:
            return exc
        if self._mode == "auto" and self.child is None:
            self._records_here += sum(len(b) for b in batches)
            if self._records_here >= SPAWN_AFTER_RECORDS:
                self._spawn()
        return results

    def _receive_oldest(self) -> None:
        ticket, child = self._sent[0], self.child
        assert child is not None
        try:
            ticket.outcome = child.receive(ticket.sent_as)
            self.groups_offloaded += 1
        except WriterGone as exc:
            self._give_up(str(exc))  # redoes this ticket and the rest here
            return
        except Exception as exc:  # the whole transaction failed in the child
            ticket.outcome = exc
        self._sent.popleft()

    def _child_ready(self) -> WriterProcess | None:
        child = self.child
        if child is None:
            return None
        try:
            return child if child.poll_ready() else None
        except WriterGone as exc:
            self._give_up(str(exc))
            return None

    def _spawn(self) -> None:
        try:
            self.child = WriterProcess(str(self.storage.path), self.storage.synchronous)
        except OSError as exc:
            self._give_up(f"could not start it ({exc})")

    def _give_up(self, reason: str) -> None:
        """Write here from now on: the child, if any, is ended, and the groups it had not
        answered are applied here, in order (writes are idempotent: module docstring)."""
        log.warning("database writer process: %s; writing in this process from now on", reason)
        self._mode = "never"
        child, self.child = self.child, None
        if child is not None:
            child.close(timeout=1.0)
        sent, self._sent = self._sent, deque()
        for ticket in sent:
            ticket.outcome = self._apply_here(ticket.batches, ticket.now)
