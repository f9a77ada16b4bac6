"""`concurrency()` and `rate_limit()`: global limits around any code, as Prefect users write it.

    from headwater import concurrency, rate_limit

    with concurrency("warehouse", occupy=2, timeout_seconds=60):
        load_rows()                     # at most the limit's slots at once, cluster-wide

    async with concurrency(["warehouse", "api"]):   # every name's slots, or none
        await call_api()

    rate_limit("api")                   # blocks until the limit's decaying slots admit one

The limits live in the state service (`headwater concurrency-limit create NAME N
[--slot-decay-per-second X]`); the slots are leases it hands out in arrival order, renewed by
this process while held and given back when the block ends, however it ends. They share one
namespace with task tags: `create warehouse 5` also limits tasks tagged "warehouse".

A name with no limit does not limit anything (a tag is often just a tag); `strict=True` makes
it an error instead. A limit of 0 (or `occupy` above the limit) raises `SlotUnavailable` at
once rather than waiting forever; a wait longer than `timeout_seconds` raises `SlotTimeout`,
naming the limits and how long it waited. The service is the flow's (the run's state
service, inside a run) or this process's (`HEADWATER_API_URL`, or the embedded one); with
recording off (`HEADWATER_RECORD=0`) there is none, and these raise `SlotUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from ..errors import SlotUnavailable
from .context import current_services, flow_run_var, task_run_var
from .slots import holder_for, slot_client


def _names(names: str | Iterable[str]) -> tuple[str, ...]:
    found = (names,) if isinstance(names, str) else tuple(names)
    if not found or not all(isinstance(n, str) and n for n in found):
        raise ValueError(f"concurrency limit names must be non-empty strings, got {names!r}")
    return found


def _client() -> Any:
    services = current_services()
    if services.target is None:
        raise SlotUnavailable(
            "concurrency limits are held by the state service, and recording is off "
            "(HEADWATER_RECORD=0): turn it on, or point HEADWATER_API_URL at a server"
        )
    return slot_client(services.target)


def _holder() -> Any:
    from ..api import Holder

    task_ctx, flow_ctx = task_run_var.get(), flow_run_var.get()
    if task_ctx is not None:
        return holder_for(task_ctx.task_run)
    if flow_ctx is not None:
        return Holder(label=f"flow run {flow_ctx.flow_run.name}", flow_run_id=flow_ctx.flow_run.id)
    return Holder(label="caller")


class concurrency:  # noqa: N801 - lowercase, as Prefect users write it
    """Hold `occupy` slots of each named limit for the duration of a `with` (or `async with`)
    block; see the module docstring."""

    def __init__(
        self,
        names: str | Iterable[str],
        occupy: int = 1,
        timeout_seconds: float | None = None,
        *,
        strict: bool = False,
    ) -> None:
        if occupy < 1:
            raise ValueError(f"occupy must be 1 or more, got {occupy}")
        if timeout_seconds is not None and timeout_seconds < 0:
            raise ValueError(f"timeout_seconds must be 0 or more, got {timeout_seconds}")
        self.names = _names(names)
        self.occupy, self.timeout_seconds, self.strict = occupy, timeout_seconds, strict
        self._lease: Any = None

    def __enter__(self) -> concurrency:
        self._lease = _client().acquire(
            self.names, self.occupy, timeout=self.timeout_seconds, holder=_holder(), strict=self.strict
        )
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()

    async def __aenter__(self) -> concurrency:
        self._lease = await _client().acquire_async(
            self.names, self.occupy, timeout=self.timeout_seconds, holder=_holder(), strict=self.strict
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, exc, tb)


def rate_limit(
    names: str | Iterable[str], occupy: int = 1, timeout_seconds: float | None = None, *, strict: bool = False
) -> None:
    """Wait until each named limit (one made with `--slot-decay-per-second`) admits `occupy`
    more; the slots drain by themselves, so there is nothing to give back."""
    if occupy < 1:
        raise ValueError(f"occupy must be 1 or more, got {occupy}")
    _client().rate_limit(_names(names), occupy, timeout=timeout_seconds, strict=strict)
