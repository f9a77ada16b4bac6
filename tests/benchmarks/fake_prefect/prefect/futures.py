"""Stand-in for `prefect.futures.wait`."""

from typing import Any


def wait(futures: Any) -> None:
    for future in futures:
        future.wait()
