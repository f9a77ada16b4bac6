"""The recorder's buffer of log records: bounded, so a log storm never stalls a task or grows
memory without limit, and honest about what it dropped.

A task printing in a tight loop can produce records faster than any server stores them. The
runtime's logging handler calls `Recorder.log`, which is `append` here: one `len` and one
`deque.append` (atomic under the GIL, any thread). Records count against the bound from the
moment they are appended until their batch is resolved (`held`), so records waiting on a slow
or absent server count too. Past `max_buffered` (`HEADWATER_LOGS_MAX_BUFFERED`) a record is
dropped and counted per flow run; producers racing past the check can overshoot the bound by
at most one record per thread. Records that say how a run went (WARNING and above, and the
engine's own lifecycle lines such as "Finished in state ...") are appended with `keep=True`
and have a reserve beyond the bound (a tenth of it), so a storm of a task's INFO lines does
not cost the run its error or its closing line.

Every drop is told: once records are accepted again (no drop since the recorder last took
records) and at most every `NOTICE_INTERVAL` seconds, or at the next `flush()` whatever
happens, one WARNING record per affected flow run says how many of its records were dropped
since the last notice, and why (`log_records.drop_notice`). A storm that drops and recovers
many times a second so leaves a few notices, not one per pause. A log batch the
server refuses, or that waits on an absent server past the grace period, is dropped the same
way: counted and told, never a `RecordingError` (logs are never a reason to fail a flow's
recording). A notice that is itself lost is counted but not told again, so a server that
refuses every log batch does not get an endless stream of notices.

Everything but `append` runs on the recorder's background thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from uuid import UUID

from .log_records import NOTICE_LOGGER, LogRecord, admit_log, drop_notice

log = logging.getLogger(__name__)

#: Characters of messages and tracebacks per log batch: about 8 MiB of UTF-8 at worst, under
#: the server's 12 MiB batch limit whatever the lines hold.
_BATCH_CHARS = 2 * 1024 * 1024
#: Flow runs whose drops are remembered one by one; past it, only the total is kept.
_MAX_DROP_RUNS = 10_000
#: In a long storm drops pause and resume many times: a run's drops are told at most this
#: often (seconds), their counts added up meanwhile, and always at a flush.
NOTICE_INTERVAL = 10.0


class LogBuffer:
    """See the module docstring."""

    def __init__(self, max_buffered: int = 100_000) -> None:
        self.max_buffered = max_buffered
        #: The bound for records appended with `keep=True`: the storm's bound plus a reserve.
        self.max_kept = max_buffered + max(1, max_buffered // 10)
        self._queue: deque[LogRecord] = deque()
        #: Records taken into batches that are not yet acknowledged or dropped.
        self.held = 0
        #: Every record dropped so far (the buffer was full, or its batch was lost).
        self.dropped = 0
        self._lock = threading.Lock()  # only on the drop path: producers race there
        self._untold: dict[UUID, list[int | str]] = {}  # flow run -> [count, first reason]
        self._dropped_since_take = False
        self._tell_now = False
        self._told_at = -NOTICE_INTERVAL  # monotonic time of the last notices

    def append(self, record: LogRecord, keep: bool = False) -> None:
        """The hot path: buffer `record`, or drop and count it when the buffer is full (for
        a `keep` record: when the reserve beyond the bound is full too)."""
        if len(self._queue) + self.held < (self.max_kept if keep else self.max_buffered):
            self._queue.append(record)
        else:
            self._drop(record.flow_run_id, 1, f"more than {self.max_buffered} log records "
                       "buffered (HEADWATER_LOGS_MAX_BUFFERED)")

    def waiting(self) -> bool:
        """Whether `take` has anything to do (records, or drops due to be told)."""
        return bool(self._queue) or self._notices_due()

    def _notices_due(self) -> bool:
        if not self._untold:
            return False
        if self._tell_now:
            return True
        return not self._dropped_since_take and time.monotonic() - self._told_at >= NOTICE_INTERVAL

    def tell_at_next_take(self) -> None:
        """A flush is coming: its batches should include the drop notices."""
        self._tell_now = True

    def take(self, now: float, max_batch: int) -> list[tuple[LogRecord, ...]]:
        """Everything buffered, admitted (`admit_log`) and split into batches of at most
        `max_batch` records and `_BATCH_CHARS` characters, drop notices last; all of it now
        counts as `held` until `resolved` or `lost`."""
        records = [admit_log(self._queue.popleft()) for _ in range(len(self._queue))]
        if self._notices_due():
            records += self._notices(now)
            self._told_at = time.monotonic()
        self._tell_now = self._dropped_since_take = False
        self.held += len(records)
        batches: list[tuple[LogRecord, ...]] = []
        start = chars = 0
        for i, r in enumerate(records):
            size = len(r.message) + len(r.exception or "")
            if i > start and (i - start >= max_batch or chars + size > _BATCH_CHARS):
                batches.append(tuple(records[start:i]))
                start, chars = i, 0
            chars += size
        if start < len(records):
            batches.append(tuple(records[start:]))
        return batches

    def resolved(self, count: int) -> None:
        """`count` held records were stored."""
        self.held -= count

    def lost(self, records: tuple[LogRecord, ...], reason: str) -> None:
        """A batch of held records will never be stored: count them, to be told later."""
        self.held -= len(records)
        log.warning("dropped %d log records: %s", len(records), reason)
        counts: dict[UUID, int] = {}
        for r in records:
            if r.logger != NOTICE_LOGGER:
                counts[r.flow_run_id] = counts.get(r.flow_run_id, 0) + 1
            else:
                self.dropped += 1
        for flow_run_id, count in counts.items():
            self._drop(flow_run_id, count, reason)

    def _drop(self, flow_run_id: UUID, count: int, reason: str) -> None:
        with self._lock:
            self.dropped += count
            self._dropped_since_take = True
            told = self._untold.get(flow_run_id)
            if told is not None:
                told[0] = int(told[0]) + count
            elif len(self._untold) < _MAX_DROP_RUNS:
                self._untold[flow_run_id] = [count, reason]

    def _notices(self, now: float) -> list[LogRecord]:
        with self._lock:
            untold, self._untold = self._untold, {}
        return [
            drop_notice(flow_run_id, int(count), str(reason), now)
            for flow_run_id, (count, reason) in untold.items()
        ]
