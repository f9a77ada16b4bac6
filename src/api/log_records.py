"""Run logs as plain data: what the runtime records (`LogRecord`), what readers get back
(`LogLine`, `LogPage`), and `admit_log`, the one place every record passes before it is stored.

A `LogRecord` is a NamedTuple, like the recorder's other records: the runtime's logging
handler makes one per log call, on the logging thread's path, and a tuple is the cheapest
immutable value to build. Everything costly about a record (size limits, text that is not
valid Unicode) is dealt with by `admit_log` on the recorder's background thread instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID

#: The most UTF-8 bytes of a message (and of a traceback) stored per record; the rest is cut
#: and replaced by a visible marker, so one enormous line costs a bounded amount everywhere.
MAX_LOG_BYTES = 32 * 1024
#: Room the wire models allow beyond `MAX_LOG_BYTES` characters for the marker itself.
MARKER_ROOM = 64
#: The logger name of the records headwater itself adds (the drop notice).
NOTICE_LOGGER = "headwater.logs"


class LogRecord(NamedTuple):
    """One line a run wrote. `task_run_id` is None for the flow run's own lines;
    `exception` is a formatted traceback, or None."""

    flow_run_id: UUID
    task_run_id: UUID | None
    level: int
    timestamp: float
    logger: str
    message: str
    exception: str | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    """A stored log record as read back. `seq` orders lines as they were committed (paging
    resumes after it); `label` names where the line came from: its task run's name, a
    subflow run's name for that subflow's own lines, None for the flow run's own lines."""

    seq: int
    flow_run_id: UUID
    task_run_id: UUID | None
    label: str | None
    level: int
    timestamp: float
    logger: str
    message: str
    exception: str | None

    @property
    def level_name(self) -> str:
        return logging.getLevelName(self.level)


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of a run's lines; ask again with `after_seq=next_seq` for the next."""

    lines: tuple[LogLine, ...]
    next_seq: int


def level_number(level: int | str | None) -> int:
    """A level as a number: None is every level, a name is looked up (`"warning"` is 30).
    Raises ValueError naming the levels for a name logging does not know."""
    if level is None:
        return 0
    if isinstance(level, int):
        return level
    text = level.strip().upper()
    if text.isdigit():
        return int(text)
    names = logging.getLevelNamesMapping()
    number = names.get(text)
    if number is None:
        known = ", ".join(sorted(names, key=lambda name: names[name]))
        raise ValueError(f"unknown log level {level!r}: use one of {known} or a number")
    return number


def truncate(text: str, limit: int = MAX_LOG_BYTES) -> str:
    """`text` cut to at most `limit` UTF-8 bytes plus a marker saying how many were cut.
    Counting bytes costs an encode, so text short enough in characters skips it."""
    if len(text) * 4 <= limit:
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", "ignore")  # never half a character
    return f"{kept}... [truncated {len(data) - len(kept.encode('utf-8', 'surrogatepass'))} bytes]"


def _valid(text: str) -> str:
    """Valid Unicode for SQLite and msgpack: a lone surrogate becomes U+FFFD (as the runtime's
    `recording.clean_text` does for states); ASCII costs one `isascii()`."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def admit_log(record: LogRecord) -> LogRecord:
    """The record as it will be stored: message and traceback cut to `MAX_LOG_BYTES` with a
    marker, and made valid Unicode, so a log record never fails its batch.

    This is the one place every record passes before it is stored (the recorder thread calls
    it for each record it takes, whichever server it records into). Masking the secrets a user
    marks as such (a later issue) belongs here too, before anything leaves the process."""
    message, exception = record.message, record.exception
    if not isinstance(message, str):
        message = str(message)
    clean = _valid(truncate(message))
    trace = None if exception is None else _valid(truncate(exception))
    if clean is message and trace is exception:
        return record
    return record._replace(message=clean, exception=trace)


def drop_notice(flow_run_id: UUID, count: int, reason: str, now: float) -> LogRecord:
    """The WARNING stored for a flow run some of whose log records were dropped."""
    return LogRecord(
        flow_run_id, None, logging.WARNING, now, NOTICE_LOGGER,
        f"{count} log record{'s' if count != 1 else ''} of this flow run were dropped ({reason})",
    )
