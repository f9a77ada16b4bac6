"""Cancels flow runs for `cancel_latency.py` from a process of its own: reads a flow run id per
line, writes the wall time it asked at, then asks (`cancel_flow_run`, not waiting). Where the
request goes follows the environment, as for any caller: HEADWATER_API_URL's server, else the
database under HEADWATER_HOME and the flow process's doorbell."""

from __future__ import annotations

import sys
import time

from headwater.runtime import cancel_flow_run

if __name__ == "__main__":
    print("ready", flush=True)
    for line in sys.stdin:
        asked = time.time()
        print(asked, flush=True)  # before the call: its whole cost is in the figure
        cancel_flow_run(line.strip())
