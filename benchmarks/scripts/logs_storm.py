"""A log storm: one task prints N lines in a tight loop (`log_prints=True`), recording on.

    python logs_storm.py N on|off

Run with ``HEADWATER_RECORD=1`` and a scratch ``HEADWATER_HOME``: the embedded state service
stores what the run-log handler ships. ``off`` removes that handler from the ``headwater``
logger (capture off, the peak-RSS baseline). Either way the logger stays at INFO, so every
line is produced, and its only other handler is a ``NullHandler``, so nothing reaches the
console. A small flow warms up first (imports, the embedded server, the database); the peak
RSS is reset after it (Linux), so the reported peak is the storm's. Prints one JSON line: the
flow run id, seconds, RSS before and at peak, and the recorder's count of dropped log records.
The lines actually stored are read back by the parent after this process exits.
"""

import json
import logging
import sys

from _rss import measure_run  # type: ignore[import-not-found, unused-ignore]  # a sibling file: run as a script
from headwater import flow, get_run_context, task
from headwater.runtime import log_capture


@task(log_prints=True)
def storm(count: int) -> int:
    for i in range(count):
        print("storm line", i)
    return count


@flow
def log_storm(count: int) -> str:
    storm(count)
    return str(get_run_context().flow_run.id)


def main() -> None:
    n, capture = int(sys.argv[1]), sys.argv[2]
    if capture not in ("on", "off"):
        raise SystemExit(f"capture must be on or off, not {capture!r}")
    logger = logging.getLogger("headwater")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.handlers = [logging.NullHandler()]  # an own handler: no console handler is added
    if capture == "on":
        logger.addHandler(log_capture._handler)
    log_storm(100)  # warm-up, untimed
    run_ids: list[str] = []
    report = measure_run(lambda: run_ids.append(log_storm(n)))

    from headwater.api.process_recorders import get_recorder

    report["flow_run_id"] = run_ids[0]
    report["dropped_logs"] = get_recorder().statistics().dropped_logs
    print(json.dumps(report))


if __name__ == "__main__":
    main()
