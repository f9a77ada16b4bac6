"""Run logs into the state service: every line a run's loggers write, from any process.

One `RunLogHandler` sits on the `headwater` logger (so on every run logger: `get_run_logger()`,
`log_prints=True`, the engine's own lines) and on the loggers `HEADWATER_LOGGING_EXTRA_LOGGERS`
names (`botocore,sqlalchemy`: Prefect's `PREFECT_LOGGING_EXTRA_LOGGERS`). A record that belongs
to a run (its `flow_run_id` attribute, or for an extra logger the run running in this thread)
is handed to that run's recorder: one append on the logging thread's path (`Recorder.log`),
shipped in batches in the background like states, bounded (a storm drops and counts). It is
installed when this module is imported, so a Dask or Ray worker ships its lines too, through
the state service its task names. With recording off there is nowhere to send them.

This is the one place a run's log records pass before they are stored: a secret value loaded
in this process (a block's secret field) is masked here (`secret_masking`), message and
traceback, at the cost of one check while no secret was loaded.
"""

from __future__ import annotations

import logging
import os
import threading

from . import secret_masking
from .context import flow_run_var, task_run_var

_formatter = logging.Formatter()
_installed_on: set[str] = set()
_lock = threading.Lock()


class RunLogHandler(logging.Handler):
    """Hands each record of a run to the run's recorder; see the module docstring."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            flow_run_id = getattr(record, "flow_run_id", None)
            task_run_id = getattr(record, "task_run_id", None)
            task_ctx = task_run_var.get()
            flow_ctx = flow_run_var.get()
            if flow_run_id is None:  # an extra logger's record: the run running here
                if task_ctx is not None:
                    task_run_id, flow_run_id = task_ctx.task_run.id, task_ctx.task_run.flow_run_id
                elif flow_ctx is not None:
                    flow_run_id = flow_ctx.flow_run.id
            if flow_run_id is None:
                return
            ctx = task_ctx or flow_ctx
            if ctx is None:
                return
            reporter = ctx.services.reporter()
            if reporter is None:  # recording is off
                return
            from ..api import LogRecord

            message = record.getMessage()
            exception = _formatter.formatException(record.exc_info) if record.exc_info else None
            if secret_masking._ordered:  # a secret was loaded here: none of it is stored
                message = secret_masking.mask(message)
                exception = None if exception is None else secret_masking.mask(exception)
            keep = record.levelno >= logging.WARNING or getattr(record, "headwater_lifecycle", False)
            reporter.recorder.log(
                LogRecord(flow_run_id, task_run_id, record.levelno, record.created, record.name, message, exception),
                keep,
            )  # fmt: skip
        except Exception:  # a log line must never break the run that wrote it
            self.handleError(record)


_handler = RunLogHandler()


def install(extra: str | None = None) -> None:
    """Put the handler on the `headwater` logger and on the extra loggers named in `extra`
    (default: `HEADWATER_LOGGING_EXTRA_LOGGERS`), once each."""
    names = ["headwater"]
    listed = os.environ.get("HEADWATER_LOGGING_EXTRA_LOGGERS", "") if extra is None else extra
    names += [name.strip() for name in listed.split(",") if name.strip()]
    with _lock:
        for name in names:
            if name not in _installed_on:
                logging.getLogger(name).addHandler(_handler)
                _installed_on.add(name)


def is_ours(handler: logging.Handler) -> bool:
    return handler is _handler
