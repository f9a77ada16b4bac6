from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runners.dask_cluster import close_shared_cluster


@pytest.fixture(scope="session", autouse=True)
def _shared_dask_cluster() -> Iterator[None]:
    """Closes the session's Dask cluster, if a test started it (`shared_dask_address()`)."""
    yield
    close_shared_cluster()
