"""Where the `runs` verbs read: the server at `HEADWATER_API_URL` when it is set (a
`StateClient`), else the SQLite database under `HEADWATER_HOME`, opened read-only (a
`Storage`). Both have the read methods of `RunSource`, so every verb is written once.

Only the chosen one is imported: reading the database never loads the gRPC client or the
pydantic models the client sends with. Nor does it load pydantic to read the two settings
that make the choice (`where_to_read`): pydantic-settings costs ~90 ms, a third of a
`runs ls` on a small database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from ..api.log_records import LogPage
    from ..api.records import FlowRunInfo, RunFilter, StateInfo, TaskRunInfo


class RunSource(Protocol):
    """What the verbs read; `StateClient` and a read-only `Storage` both provide it."""

    def list_flow_runs(self, flt: RunFilter = ...) -> list[FlowRunInfo]: ...
    def read_flow_run(self, ident: UUID | str) -> FlowRunInfo: ...
    def read_task_run(self, ident: UUID | str) -> TaskRunInfo: ...
    def list_task_runs(self, flow_run_id: UUID) -> list[TaskRunInfo]: ...
    def read_history(self, run_id: UUID) -> list[StateInfo]: ...
    def read_logs(
        self, run_id: UUID | str, *, level: int | str | None = ..., task: str | None = ...,
        after_seq: int | None = ..., limit: int = ..., tail: bool = ...,
    ) -> LogPage: ...


@contextmanager
def open_source() -> Iterator[RunSource]:
    api_url, db_path = where_to_read()
    if api_url:
        from ..api.client import StateClient

        with StateClient(api_url, retry_for=5.0) as client:  # reads the token, TLS from Settings
            yield client
    else:
        from ..api.storage import Storage

        yield Storage(db_path, read_only=True)


def where_to_read() -> tuple[str | None, Path]:
    """`get_settings().api_url` and `.db_path`, read from the environment as pydantic-settings
    reads them (`HEADWATER_` names in any case, values as given), without importing it.

    This restates two fields of `api.settings.Settings` (and its `DB_FILENAME`), as
    `api/rules.py` restates the runtime's states; `tests/cli/test_startup.py` checks that both
    answer alike, so change them together.
    """
    env = {name.lower(): value for name, value in os.environ.items()}
    home = env.get("headwater_home")
    home_path = Path(home) if home is not None else Path.home() / ".headwater"
    return env.get("headwater_api_url"), home_path.expanduser() / "headwater.db"
