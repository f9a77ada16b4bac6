"""A write whose reply was lost after it committed is retried and gets the original reply.

A real server process and a real TCP proxy on 127.0.0.1 between it and the client. On the
first connection the proxy passes HTTP/2 connection frames (settings, pings) both ways but
holds back everything the server sends on a call's stream: the write reaches the server and
commits, its reply never reaches the client. Once the state is seen committed the proxy cuts
that connection; the client retries on a new one.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid

import grpc

from headwater.api import StateClient
from headwater.api import codec
from headwater.api.service import REQUEST_ID_KEY, method_path

from .conftest import TOKEN
from .helpers import flow, state

_HEADER = 9  # an HTTP/2 frame header: length (3), type, flags, stream id (4)


class WithholdingProxy:
    """Forwards 127.0.0.1:port to the server; on its first connection, withholds the
    server's stream frames (replies) until `cut()` closes that connection."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._first: list[socket.socket] = []
        self._connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self._connections += 1
            first = self._connections == 1
            if first:
                self._first = [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            target = self._pump_withholding if first else self._pump
            threading.Thread(target=target, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    @staticmethod
    def _pump_withholding(source: socket.socket, sink: socket.socket) -> None:
        buffer = b""
        try:
            while data := source.recv(65536):
                buffer += data
                while len(buffer) >= _HEADER:
                    length = int.from_bytes(buffer[:3], "big")
                    if len(buffer) < _HEADER + length:
                        break
                    frame, buffer = buffer[: _HEADER + length], buffer[_HEADER + length :]
                    stream = int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF
                    if stream == 0:  # connection frames pass; a call's reply does not
                        sink.sendall(frame)
        except OSError:
            pass

    def cut(self) -> None:
        for sock in self._first:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._listener.close()


def test_a_set_state_retried_after_its_reply_was_lost_is_still_answered_new(server_process: str) -> None:
    host, port = server_process.removeprefix("grpc://").rsplit(":", 1)
    proxy = WithholdingProxy((host, int(port)))
    direct = StateClient(server_process, token=TOKEN)
    through_proxy = StateClient(f"grpc://127.0.0.1:{proxy.port}", token=TOKEN, timeout=5, retry_for=20)
    try:
        run = flow()
        direct.create_flow_run(run)
        running = state(run.id, "RUNNING")
        answer: list[bool] = []
        caller = threading.Thread(target=lambda: answer.append(through_proxy.set_state(running)))
        caller.start()
        deadline = time.monotonic() + 10
        while not any(s.transition_id == running.transition_id for s in direct.read_history(run.id)):
            assert time.monotonic() < deadline, "the write never reached the server"
            time.sleep(0.02)
        assert not answer  # committed, but its reply is held back
        proxy.cut()
        caller.join(20)
        assert answer == [True]  # the retry got the original reply, not "duplicate"
        # A genuinely repeated write (a new call, not a retry) is still told it is a duplicate.
        assert direct.set_state(running) is False
    finally:
        through_proxy.close()
        direct.close()
        proxy.close()


def test_the_same_request_id_gets_the_same_reply_and_a_new_one_is_decided_afresh(server_process: str) -> None:
    with StateClient(server_process, token=TOKEN) as client:
        run = flow()
        client.create_flow_run(run)
    channel = grpc.insecure_channel(server_process.removeprefix("grpc://"))
    set_state = channel.unary_unary(method_path("SetState"))
    body = codec.pack(codec.state_body(state(run.id, "RUNNING")))
    auth = ("authorization", f"Bearer {TOKEN}")
    try:
        request_id = uuid.uuid4().hex
        first = set_state(body, metadata=(auth, (REQUEST_ID_KEY, request_id)), timeout=10)
        again = set_state(body, metadata=(auth, (REQUEST_ID_KEY, request_id)), timeout=10)
        other = set_state(body, metadata=(auth, (REQUEST_ID_KEY, uuid.uuid4().hex)), timeout=10)
    finally:
        channel.close()
    assert codec.unpack(first) == codec.unpack(again) == {"duplicate": False}
    assert codec.unpack(other) == {"duplicate": True}
