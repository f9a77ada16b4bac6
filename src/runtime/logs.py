"""Run-aware logging: `get_run_logger()`, the console format, and `log_prints`.

Every record from a run logger carries `flow_run_id`, `task_run_id`, `flow_run_name` and
`task_run_name` attributes. If the application configured no logging, headwater adds one
console handler to the `headwater` logger, so a flow shows its progress out of the box.

The `headwater` logger logs at `HEADWATER_LOG_LEVEL` (INFO when unset) whatever the root
logger's level, as Prefect's run loggers do: a program (or a pytest session) that set the
root to WARNING still gets its runs' INFO lines, and its own handlers still see them
(records propagate). A level set on the `headwater` logger by the application stands.
"""

from __future__ import annotations

import builtins
import logging
import os
import sys
import threading
from typing import Any

from ..errors import MissingContext
from . import log_capture
from .context import flow_run_var, task_run_var
from .tracebacks import folded_text, folding, raised_at

flow_logger = logging.getLogger("headwater.flow_runs")
task_logger = logging.getLogger("headwater.task_runs")

_setup_lock = threading.Lock()
_console_ready = False
_print_patched = False
_builtin_print = builtins.print


class _RunFormatter(logging.Formatter):
    """The console's lines. A logged exception is shown without headwater's frames, and a
    run's failure (the engine's lifecycle line) as one line saying where it was raised: its
    traceback is printed where it propagates, and stored with the run's logs. Under
    `HEADWATER_LOG_LEVEL=DEBUG` every traceback is shown in full (`tracebacks.py`)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(label)s%(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        task_name = getattr(record, "task_run_name", None)
        flow_name = getattr(record, "flow_run_name", None)
        if task_name:
            record.label = f"Task run {task_name!r} - "
        elif flow_name:
            record.label = f"Flow run {flow_name!r} - "
        else:
            record.label = ""
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not folding():
            return super().format(record)
        # Formatted here rather than by super(), which would cache the folded text in
        # `record.exc_text` for every handler after this one.
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        if getattr(record, LIFECYCLE, False):
            where = raised_at(exc)
            text = f"{text} (raised at {where})" if where else text
        else:
            text = f"{text}\n{folded_text(exc)}"
        return f"{text}\n{self.formatStack(record.stack_info)}" if record.stack_info else text


def run_log_level() -> int:
    """`HEADWATER_LOG_LEVEL` as a logging level (INFO when unset); a value that is not a
    level is an error naming the variable and the levels there are."""
    name = os.environ.get("HEADWATER_LOG_LEVEL", "").strip().upper() or "INFO"
    level = logging.getLevelNamesMapping().get(name)
    if level is None or name == "NOTSET":
        raise ValueError(
            f"HEADWATER_LOG_LEVEL={name!r} is not a log level; use one of DEBUG, INFO, WARNING, "
            "ERROR, CRITICAL"
        )
    return level


def _prepare_here() -> None:
    """In every process that imports headwater (a Dask or Ray worker too): run loggers at
    their level, whatever the root logger's, and their records on their way to the state
    service. A bad `HEADWATER_LOG_LEVEL` is reported when a flow starts, not at import."""
    root = logging.getLogger("headwater")
    if root.level == logging.NOTSET:
        try:
            root.setLevel(run_log_level())
        except ValueError:
            pass
    log_capture.install()


def ensure_console_logging() -> None:
    """Set the `headwater` logger's level (unless the application did), and add the console
    handler unless the application configured logging itself."""
    global _console_ready
    if _console_ready:
        return
    with _setup_lock:
        if _console_ready:
            return
        root = logging.getLogger("headwater")
        run_log_level()  # a bad level is an error now, when a flow starts
        log_capture.install()  # again: HEADWATER_LOGGING_EXTRA_LOGGERS may be set by now
        own = [h for h in root.handlers if not log_capture.is_ours(h)]
        if not own and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(_RunFormatter())
            root.addHandler(handler)
        _console_ready = True


#: The record attribute marking the engine's lifecycle lines (a run began, retries, finished):
#: kept through a log storm by the recorder's reserve (`log_buffer.py`), like WARNING lines.
LIFECYCLE = "headwater_lifecycle"


def run_extra(lifecycle: bool = False) -> dict[str, Any]:
    """The run ids and names for the innermost run here (empty outside any run);
    `lifecycle` marks one of the engine's own lines about the run's course."""
    flow_ctx = flow_run_var.get()
    task_ctx = task_run_var.get()
    extra: dict[str, Any] = {
        "flow_run_id": None,
        "flow_run_name": None,
        "task_run_id": None,
        "task_run_name": None,
        LIFECYCLE: lifecycle,
    }
    if flow_ctx is not None:
        extra["flow_run_id"] = flow_ctx.flow_run.id
        extra["flow_run_name"] = flow_ctx.flow_run.name
    if task_ctx is not None:
        extra["task_run_id"] = task_ctx.task_run.id
        extra["task_run_name"] = task_ctx.task_run.name
        if flow_ctx is None and task_ctx.task_run.flow_run_id is not None:
            extra["flow_run_id"] = task_ctx.task_run.flow_run_id
    return extra


def get_run_logger() -> logging.LoggerAdapter[logging.Logger]:
    """A logger whose records carry the current run's ids; call it inside a flow or task."""
    if task_run_var.get() is None and flow_run_var.get() is None:
        raise MissingContext(
            "get_run_logger() needs a running flow or task; use logging.getLogger() elsewhere"
        )
    logger = task_logger if task_run_var.get() is not None else flow_logger
    return logging.LoggerAdapter(logger, run_extra())


def _prints_to_log() -> bool:
    task_ctx = task_run_var.get()
    if task_ctx is not None:
        return task_ctx.log_prints
    flow_ctx = flow_run_var.get()
    return flow_ctx is not None and flow_ctx.log_prints


def _print(*values: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False) -> None:
    if (file is None or file is sys.stdout) and _prints_to_log():
        get_run_logger().info((sep if sep is not None else " ").join(map(str, values)))
        return
    _builtin_print(*values, sep=sep, end=end, file=file, flush=flush)


def enable_log_prints() -> None:
    """Route `print` to the run logger inside runs that set `log_prints=True`.

    Installed once, on the first run that asks; outside such runs `print` behaves as always.
    """
    global _print_patched
    with _setup_lock:
        if not _print_patched:
            builtins.print = _print
            _print_patched = True


_prepare_here()
