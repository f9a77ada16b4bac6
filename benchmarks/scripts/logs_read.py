"""Reads back a flow run's stored log lines and counts them (after `logs_storm.py` exited).

    python logs_read.py FLOW_RUN_ID PREFIX

Run with the storm's ``HEADWATER_HOME``. Pages through ``StateClient.read_logs`` (the public
client, against this home's embedded state service) and prints one JSON line: how many stored
lines start with PREFIX, how many lines are drop notices, and the records those notices say
were dropped.
"""

import json
import re
import sys

from headwater.api import StateClient, recorder_target
from headwater.api.log_records import NOTICE_LOGGER

PAGE = 10_000  # the server's largest page
DROPPED = re.compile(r"^(\d+) log records? of this flow run were dropped")


def main() -> None:
    run_id, prefix = sys.argv[1], sys.argv[2]
    url, token, _ = recorder_target()
    client = StateClient(url, token=token)
    matching = notices = told = total = 0
    after = None
    while True:
        page = client.read_logs(run_id, after_seq=after, limit=PAGE)
        for line in page.lines:
            total += 1
            if line.message.startswith(prefix):
                matching += 1
            elif line.logger == NOTICE_LOGGER:
                found = DROPPED.match(line.message)
                if found:
                    notices += 1
                    told += int(found.group(1))
        if len(page.lines) < PAGE:
            break
        after = page.next_seq
    print(json.dumps({"stored": matching, "notices": notices, "told_dropped": told, "total": total}))


if __name__ == "__main__":
    main()
