"""Child of the `events-ingest` and `events-to-action` workloads (issue #17), against the
server at HEADWATER_API_URL. Prints one JSON line.

    event_load.py ingest N P     N events emitted by P producer threads (emit_event, batched),
                                 flushed: events stored per second
    event_load.py action N       N events one after another, each firing an automation whose
                                 webhook posts to a receiver here: emit to webhook, p50 / p99
"""

from __future__ import annotations

import http.server
import json
import sys
import threading
import time
import uuid


def _ingest(n: int, producers: int) -> dict[str, float]:
    from headwater.events import emit_event, flush_events

    emit_event("bench.warm", resource={"headwater.resource.id": "bench"})
    flush_events(30)
    each = n // producers

    def produce(k: int) -> None:
        for i in range(each):
            emit_event("bench.ingest", resource={"headwater.resource.id": f"bench.{k}"}, payload={"i": i})

    started = time.perf_counter()
    threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not flush_events(300):
        raise RuntimeError("events were not stored in time")
    seconds = time.perf_counter() - started
    return {"events_per_s": each * producers / seconds, "seconds": seconds}


class _Receiver(http.server.BaseHTTPRequestHandler):
    arrived: dict[str, float] = {}
    signal = threading.Condition()

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with _Receiver.signal:
            _Receiver.arrived[body["tag"]] = time.time()
            _Receiver.signal.notify_all()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _action(n: int) -> dict[str, float]:
    from headwater.automations import Automation, CallWebhook, EventTrigger
    from headwater.events import emit_event, flush_events

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    Automation(name, EventTrigger(expect={f"{name}.ping"}),
               [CallWebhook(f"http://127.0.0.1:{receiver.server_port}/", body={"tag": "{{ event.payload.tag }}"})]).create()  # fmt: skip
    found = []
    for i in range(n + 1):  # the first is untimed
        tag = f"t{i}"
        asked = time.time()
        emit_event(f"{name}.ping", resource={"headwater.resource.id": "bench"}, payload={"tag": tag})
        flush_events(30)
        with _Receiver.signal:
            if not _Receiver.signal.wait_for(lambda: tag in _Receiver.arrived, 30):
                raise RuntimeError(f"webhook {tag} never arrived")
        if i:
            found.append((_Receiver.arrived[tag] - asked) * 1e3)
    receiver.shutdown()
    found.sort()
    return {"p50_ms": found[len(found) // 2], "p99_ms": found[min(len(found) - 1, int(0.99 * len(found)))], "max_ms": found[-1]}


if __name__ == "__main__":
    if sys.argv[1] == "ingest":
        print(json.dumps(_ingest(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        print(json.dumps(_action(int(sys.argv[2]))))
