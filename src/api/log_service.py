"""The run logs' RPCs: `ReadLogs` (a page of a run's lines) and `FollowLogs` (a server stream
of its new lines until the run ends).

Lines are written by the recorder's batches through the group committer like states (see
`log_store.py`); this module only reads. A follower is pushed new lines as they are
committed: the committer calls `notify` after every commit, which bumps a generation under a
condition variable, and each follower waits on it, then reads what is new. There is no
polling interval; the wait wakes for a commit, for the client going away (a gRPC callback)
or for the server stopping (`end_streams`).

A stream ends when the followed run (a flow run, or a task run) is in a final state, every
line committed before that state was seen has been sent, and `FOLLOW_LINGER` seconds have
passed since the run entered that state without a new line. The recorder commits a run's
lines before its final state (see `recorder._drain`), so the read after seeing that state
holds the flow process's last lines; the linger is for the lines a Dask or Ray worker, or a
second process, records through a connection of its own, which can land just after the
flow's final state. A run that ended long ago ends its stream at once. Each open stream
holds one of the server's threads, as `SlotGrants` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from . import codec
from . import models as m
from .commit_signal import CommitSignal
from .log_store import LogQuery, query_for, read_logs, run_state
from .rules import TERMINAL
from .storage import Storage

Handler = Callable[[bytes], dict[str, Any]]

#: Lines per message of a `FollowLogs` stream.
_FOLLOW_PAGE = 1000
#: Seconds after a run's final state during which a follower still waits for lines recorded
#: by other processes (module docstring).
FOLLOW_LINGER = 1.0


class LogService:
    """`ReadLogs` and `FollowLogs` over the service's storage."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._signal = CommitSignal()

    def handlers(self) -> dict[str, Handler]:
        return {"ReadLogs": self.read}

    def notify(self) -> None:
        """Something was committed: wake every follower (the committer calls this)."""
        self._signal.notify()

    def end_streams(self) -> None:
        """End every open stream: the server is stopping, and streams never end by themselves."""
        self._signal.end()

    def read(self, data: bytes) -> dict[str, Any]:
        body = codec.decode(m.ReadLogsIn, data)
        query, _ = self._query(body.run_id, body.min_level, body.task, body.after_seq, body.limit, body.tail)
        return codec.log_page_body(read_logs(self._storage.reader(), query))

    def follow(self, data: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """The `FollowLogs` stream: one message (`LogsOut`) per group of new lines."""
        body = codec.decode(m.FollowLogsIn, data)
        query, kind = self._query(body.run_id, body.min_level, body.task, body.after_seq, _FOLLOW_PAGE, False)
        run_id = query.task_run_id if kind == "task" else query.flow_run_id
        assert run_id is not None
        signal = self._signal
        gone = signal.watch_client(context)
        if gone is None:
            return  # the call ended before it got here
        after, ends_at = query.after_seq, None  # ends_at: wall time, once the run is final
        while not gone.is_set():
            generation = signal.generation()
            page = read_logs(self._storage.reader(), _after(query, after))
            if page.lines:
                after = page.next_seq
                yield codec.pack(codec.log_page_body(page))
                continue
            if ends_at is None:
                state, entered = run_state(self._storage.reader(), kind, run_id)
                if state in TERMINAL:
                    ends_at = entered + FOLLOW_LINGER
                    continue  # one more read: lines committed before that state
            elif time.time() >= ends_at:
                return  # final, nothing more, and the linger is over
            timeout = None if ends_at is None else ends_at - time.time()
            if timeout is None or timeout > 0:
                signal.wait(generation, gone, timeout)
            if signal.ending:
                return

    def _query(
        self, ident: str, level: int, task: str | None, after_seq: int, limit: int, tail: bool
    ) -> tuple[LogQuery, str]:
        return query_for(self._storage.resolve_id, self._storage.reader(), ident, level=level,
                         task=task, after_seq=after_seq, limit=limit, tail=tail)


def _after(query: LogQuery, seq: int) -> LogQuery:
    return LogQuery(query.flow_run_id, query.task_run_id, query.min_level, query.task, seq,
                    query.limit, query.tail)
