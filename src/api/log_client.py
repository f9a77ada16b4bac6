"""The client side of run logs: request bodies and the `FollowLogs` stream, for `StateClient`
and `AsyncStateClient` (whose `read_logs` / `follow_logs` are one line each over these).

A followed stream that breaks (the server restarted, a connection went silent) is opened
again after the last line received, with backoff, for up to the client's `retry_for`
seconds: lines are neither repeated nor skipped, since each carries its commit `seq`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import UUID

import anyio
import grpc

from . import codec
from . import models as m
from .errors import ServiceUnavailable, error_for_status
from .log_records import LogLine, level_number

#: Statuses after which a stream is opened again (the server is away, not refusing).
_AGAIN = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def read_logs_body(
    run_id: UUID | str, level: int | str | None, task: str | None, after_seq: int | None,
    limit: int, tail: bool,
) -> dict[str, Any]:
    return {
        "run_id": str(run_id), "min_level": level_number(level), "task": task,
        "after_seq": after_seq or 0, "limit": limit, "tail": tail,
    }


def _follow_body(run_id: UUID | str, level: int | str | None, task: str | None, after: int) -> bytes:
    body = {"run_id": str(run_id), "min_level": level_number(level), "task": task, "after_seq": after}
    return codec.pack(body)


def _lines(message: bytes) -> tuple[LogLine, ...]:
    return codec.log_page(codec.decode(m.LogsOut, message, max_bytes=codec.MAX_GRPC_MESSAGE)).lines


class _Retry:
    """When to open a broken stream again: capped doubling delays within `retry_for` seconds
    of the last time the stream delivered something."""

    def __init__(self, retry_for: float) -> None:
        self._retry_for = retry_for
        self.reset()

    def reset(self) -> None:
        self._deadline, self._delay = time.monotonic() + self._retry_for, 0.05

    def delay(self, exc: grpc.RpcError) -> float:
        """Seconds to wait before opening again; raises when the stream should not be."""
        code = exc.code()
        if code not in _AGAIN:
            raise error_for_status(code, exc.details() or "") from None
        if time.monotonic() + self._delay > self._deadline:
            raise ServiceUnavailable(f"FollowLogs: state service unreachable: {exc.details()}") from None
        delay, self._delay = self._delay, min(self._delay * 2, 2.0)
        return delay


def follow(
    open_stream: Callable[[bytes], Iterator[bytes]], run_id: UUID | str, *,
    level: int | str | None, task: str | None, after_seq: int | None, retry_for: float,
) -> Iterator[LogLine]:
    """Lines of `run_id` as they are committed, until the run ends (see `log_service.py`)."""
    after, retry = after_seq or 0, _Retry(retry_for)
    while True:
        try:
            for message in open_stream(_follow_body(run_id, level, task, after)):
                for line in _lines(message):
                    after = line.seq
                    yield line
                retry.reset()
            return
        except grpc.RpcError as exc:
            time.sleep(retry.delay(exc))


async def follow_async(
    open_stream: Callable[[bytes], Any], run_id: UUID | str, *,
    level: int | str | None, task: str | None, after_seq: int | None, retry_for: float,
) -> AsyncIterator[LogLine]:
    """`follow` on asyncio (grpc.aio): the same lines, awaited."""
    after, retry = after_seq or 0, _Retry(retry_for)
    while True:
        try:
            async for message in open_stream(_follow_body(run_id, level, task, after)):
                for line in _lines(message):
                    after = line.seq
                    yield line
                retry.reset()
            return
        except grpc.RpcError as exc:
            await anyio.sleep(retry.delay(exc))
