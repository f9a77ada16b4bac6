"""What a follower stream waits on: a count of commits, bumped by each `notify`, and the end
of every stream (`end`), with the wait that wakes on either or on its own client going away.

`EventService` and `LogService` each hold one; the committer (and an emit) notifies it.
"""

from __future__ import annotations

import threading

import grpc


class CommitSignal:
    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._generation = 0
        self.ending = False

    def notify(self) -> None:
        """Something was committed: wake every follower."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def end(self) -> None:
        """End every stream: the server is stopping, and streams never end by themselves."""
        with self._changed:
            self.ending = True
            self._changed.notify_all()

    def generation(self) -> int:
        """Read before looking for new rows; `wait` returns once it moved on."""
        with self._changed:
            return self._generation

    def watch_client(self, context: grpc.ServicerContext) -> threading.Event | None:
        """An event set once the stream's client goes (which also wakes `wait`); None when
        the call had already ended (its callback would never run)."""
        gone = threading.Event()

        def on_gone() -> None:
            gone.set()
            with self._changed:
                self._changed.notify_all()

        return gone if context.add_callback(on_gone) else None

    def wait(self, generation: int, gone: threading.Event, timeout: float | None) -> None:
        """Until a commit after `generation`, the end of streams, `gone`, or `timeout`."""
        with self._changed:
            if self._generation == generation and not (self.ending or gone.is_set()):
                self._changed.wait(timeout)
