"""What the concurrency-slot workloads (`slots.py`, `slots_flow.py`) share: the recording
environment their flows need (limits live in the state service, so there are none with
recording off), limits made on this process's embedded service, the standalone server of
`slots-pairs`, and percentiles.
"""

from __future__ import annotations

from typing import Any

from benchmarks.children import scratch_home, start_server
from benchmarks.engines import environment

TOKEN = "bench-slots-token"

_server: str | None = None


def recording_env() -> dict[str, str]:
    """Record into the embedded service under the suite's scratch home (as `cache` does)."""
    return {"HEADWATER_RECORD": "1", "HEADWATER_HOME": scratch_home()}


def embedded_client() -> Any:
    """This process's `SlotClient` for its embedded state service: the one the flows' schedulers
    use, so a limit it creates applies to them at once."""
    from headwater.api import recorder_target
    from headwater.runtime.slots import slot_client

    with environment(recording_env()):
        return slot_client(recorder_target())


def embedded_limit(name: str, limit: int) -> Any:
    """Create (or resize) a limit on the embedded service; its client."""
    client = embedded_client()
    client.create_limit(name, limit)
    return client


def standalone_server() -> str:
    """One `headwater server start` of the slot workloads' own (a fresh scratch home, so the
    other workloads' rows and clients do not share its database), stopped at exit."""
    global _server
    if _server is None:
        _server = start_server(TOKEN, "headwater-bench-slots-")
    return _server


def percentile(sorted_values: list[float], q: float) -> float:
    """The value at quantile q (0..1) of an ascending list, nearest rank."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]
