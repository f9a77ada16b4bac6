"""Unary calls to the state service running in this very process, without gRPC.

A flow process on the embedded default runs the state service itself, and its own clients
(the slot client taking and giving back concurrency slots, the flow's end reading its runs)
would otherwise go through a TCP connection to themselves: serialization, the channel's
threads and the server's thread pool, each a wait for the GIL, for a call that ends in a
function of this process. A `LocalStub` calls that function directly, with the same request
bytes, the same authentication and the same error mapping (a refusal raises `LocalRpcError`,
a `grpc.RpcError` with its code and details, so `client.invoke` treats both transports
alike). Streaming calls (the slot grants) still go through gRPC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc

UnaryHandler = Callable[[bytes, Any], bytes]


class LocalRpcError(grpc.RpcError):  # type: ignore[misc]  # grpc is untyped
    """A local call refused the way the server would have: a status code and its details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class _LocalContext:
    """What a handler reads from its context: the call's metadata, and how to refuse it."""

    __slots__ = ("_metadata",)

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> Sequence[tuple[str, str]]:
        return self._metadata

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise LocalRpcError(code, details)


class LocalStub:
    """Stands where a gRPC unary stub does: `stub(request, timeout=..., metadata=...)`. A
    server that stopped is UNAVAILABLE, as it would be over the network."""

    __slots__ = ("_handle", "_server")

    def __init__(self, handle: UnaryHandler, server: Any) -> None:
        self._handle, self._server = handle, server

    def __call__(self, request: bytes, *, timeout: float | None = None, metadata: Sequence[tuple[str, str]] = ()) -> bytes:
        if not self._server.serving:
            raise LocalRpcError(grpc.StatusCode.UNAVAILABLE, "the state service in this process has stopped")
        return self._handle(request, _LocalContext(metadata))


def local_stub(url: str, method: str) -> LocalStub | None:
    """A direct stub for `method` when the server at `url` runs in this process, else None."""
    from .process_recorders import embedded_server

    server = embedded_server()
    if server is None or server.url != url:
        return None
    handle = server.unary_handlers().get(method)
    return None if handle is None else LocalStub(handle, server)
