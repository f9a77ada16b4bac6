"""Every run recorded, end to end: real flow processes, the real embedded or standalone
state service, real SQLite, read back through the `headwater runs` CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import start_server_process

PYTHON = sys.executable


def run_script(home: Path, code: str, *, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "HEADWATER_HOME": str(home), **(env or {})}
    if env is None or "HEADWATER_API_URL" not in env:
        full_env.pop("HEADWATER_API_URL", None)
    return subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def cli_json(home: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    full_env = {**os.environ, "HEADWATER_HOME": str(home), **(env or {})}
    if env is None or "HEADWATER_API_URL" not in env:
        full_env.pop("HEADWATER_API_URL", None)
    out = subprocess.run(
        [PYTHON, "-m", "headwater.cli", "runs", *args, "--json"],
        capture_output=True, text=True, env=full_env, timeout=60, check=True,
    )
    return json.loads(out.stdout)


PIPELINE = """
import os
from headwater import flow, task, allow_failure

@task
def load(i: int) -> int:
    return i

@task
def combine(values: list[int], bonus: int) -> int:
    return sum(values) + bonus

@task
def broken() -> int:
    raise ValueError("broken on purpose")

@flow
def child(x: int) -> int:
    return load(x)

@flow
def pipeline(n: int) -> int:
    loaded = load.map(range(n))
    total = combine.submit(loaded, bonus=child(100))
    broken.submit()
    return total.result()

print(pipeline(3), os.getpid())
"""


def test_every_run_state_and_lineage_is_recorded_by_default(tmp_path: Path) -> None:
    result = run_script(tmp_path, PIPELINE)
    assert result.returncode == 0, result.stderr
    value, pid = result.stdout.split()
    assert value == "103"

    runs = cli_json(tmp_path, "ls")
    by_flow = {run["flow_name"]: run for run in runs}
    parent, child = by_flow["pipeline"], by_flow["child"]
    assert parent["state_type"] == "COMPLETED"
    shown = cli_json(tmp_path, "show", parent["id"])
    assert [s["name"] for s in shown["states"]] == ["Pending", "Running", "Completed"]
    tasks = {t["name"]: t for t in shown["task_runs"]}
    assert set(tasks) == {"load-0", "load-1", "load-2", "combine-0", "broken-0"}
    assert [s["name"] for s in tasks["load-1"]["states"]] == ["Pending", "Running", "Completed"]
    assert tasks["broken-0"]["state_type"] == "FAILED"
    assert sorted(tasks["combine-0"]["upstream"]) == sorted(tasks[f"load-{i}"]["id"] for i in range(3))
    child_shown = cli_json(tmp_path, "show", child["id"])
    assert child_shown["state_type"] == "COMPLETED"
    assert child_shown["parent_id"] == parent["id"]
    # Threads of the flow's process ran everything: every run says so.
    places = {(r["host"], r["pid"]) for r in (parent, child_shown, *tasks.values(), *child_shown["task_runs"])}
    assert places == {(socket.gethostname(), int(pid))}


def test_a_5000_task_flow_is_fully_recorded_once_its_process_exits(tmp_path: Path) -> None:
    code = """
    from headwater import flow, task

    @task
    def noop(i: int) -> int:
        return i

    @flow
    def many() -> None:
        noop.map(range(5000)).wait()

    many()
    """
    result = run_script(tmp_path, code)
    assert result.returncode == 0, result.stderr
    (run,) = cli_json(tmp_path, "ls")
    assert run["task_run_count"] == 5000
    assert run["state_type"] == "COMPLETED"


DOOMED = """
import sys, time
from headwater import flow, task
from headwater.runners import ConcurrentTaskRunner

@task
def slow(i: int) -> None:
    time.sleep(30)

@flow(task_runner=ConcurrentTaskRunner(max_workers=2))
def doomed() -> None:
    slow.map(range(4))
    print("started", flush=True)
    time.sleep(30)

doomed()
"""


def start_doomed(home: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {**os.environ, "HEADWATER_HOME": str(home), **(env or {})}
    if env is None or "HEADWATER_API_URL" not in env:
        full_env.pop("HEADWATER_API_URL", None)
    proc = subprocess.Popen([PYTHON, "-c", DOOMED], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.2)
    return proc


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, -signal.SIGINT)])
def test_sigterm_or_ctrl_c_marks_the_flow_crashed_and_its_tasks_ended(tmp_path: Path, signum: int, exit_code: int) -> None:
    proc = start_doomed(tmp_path)
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == exit_code

    (run,) = cli_json(tmp_path, "ls")
    assert (run["state_type"], run["state_name"]) == ("CRASHED", "Crashed")
    shown = cli_json(tmp_path, "show", run["id"])
    ended = {t["state_type"] for t in shown["task_runs"]}
    assert ended <= {"CRASHED", "CANCELLED"} and len(shown["task_runs"]) == 4


@pytest.fixture()
def standalone(tmp_path: Path):
    home = tmp_path / "server-home"
    proc, url = start_server_process(home)
    yield proc, url, home
    proc.terminate()
    proc.wait(timeout=10)


def test_two_flow_processes_record_into_one_standalone_server(tmp_path: Path, standalone: Any) -> None:
    _proc, url, _home = standalone
    env = {"HEADWATER_API_URL": url}
    for name in ("first", "second"):
        code = f"""
        from headwater import flow, task

        @task
        def work(i: int) -> int:
            return i

        @flow(name="{name}")
        def pipeline() -> int:
            return sum(work.map(range(10)).result())

        print(pipeline())
        """
        result = run_script(tmp_path / name, code, env=env)
        assert result.returncode == 0, result.stderr
    runs = cli_json(tmp_path, "ls", env=env)
    assert sorted(r["flow_name"] for r in runs) == ["first", "second"]
    assert all(r["task_run_count"] == 10 and r["state_type"] == "COMPLETED" for r in runs)


def test_a_server_gone_for_good_fails_the_flow_naming_the_unrecorded_runs(tmp_path: Path, standalone: Any) -> None:
    proc, url, _home = standalone
    gate = tmp_path / "go"
    code = f"""
    import pathlib, time
    from headwater import flow, task

    @task
    def work(i: int) -> int:
        return i

    @flow
    def stranded() -> int:
        print("running", flush=True)
        while not pathlib.Path({str(gate)!r}).exists():
            time.sleep(0.05)
        return sum(work.map(range(3)).result())

    stranded()
    """
    env = {
        **os.environ, "HEADWATER_HOME": str(tmp_path), "HEADWATER_API_URL": url,
        "HEADWATER_RECORDER_GRACE_SECONDS": "1",
    }  # fmt: skip
    flow_proc = subprocess.Popen([PYTHON, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert flow_proc.stdout is not None
    assert flow_proc.stdout.readline().strip() == "running"
    proc.kill()
    proc.wait(timeout=10)
    gate.write_text("go")
    released = time.monotonic()
    _out, err = flow_proc.communicate(timeout=60)
    # The flow ends soon after the grace (1 s): tidying up its watch on the server it lost
    # used to retry for 30 s first.
    assert time.monotonic() - released < 15
    assert flow_proc.returncode != 0
    assert "RecordingError" in err and "state service unreachable" in err
    unrecorded = re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", err.split("unrecorded runs:")[-1])
    assert len(unrecorded) == 4  # the flow run and its three task runs


def test_a_killed_flow_process_is_marked_crashed_once_its_heartbeats_stop(tmp_path: Path) -> None:
    home = tmp_path / "server-home"
    fast = {"HEADWATER_HEARTBEAT_INTERVAL_SECONDS": "0.25"}
    server, url = start_server_process(home, "--heartbeat-timeout", "1", env=fast)
    try:
        flow_proc = start_doomed(tmp_path, env={"HEADWATER_API_URL": url, **fast})
        flow_proc.kill()  # SIGKILL: no chance to record anything more
        flow_proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while True:
            (run,) = cli_json(tmp_path, "ls", env={"HEADWATER_API_URL": url})
            if run["state_type"] != "RUNNING" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert run["state_type"] == "CRASHED"
        shown = cli_json(tmp_path, "show", run["id"], env={"HEADWATER_API_URL": url})
        assert "heartbeat" in shown["states"][-1]["message"]
        assert all(t["state_type"] != "RUNNING" for t in shown["task_runs"])
    finally:
        server.terminate()
        server.wait(timeout=10)


FORKED = """
import os, time
from headwater import flow, task

@task
def one() -> int:
    return 1

@flow
def parent_flow() -> int:
    return one()

@flow
def child_flow() -> int:
    return one() + one()

parent_flow()
started = time.monotonic()
pid = os.fork()
if pid == 0:
    child_flow()  # a recorder of its own: the parent's threads did not survive the fork
    os._exit(0)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), round(time.monotonic() - started, 1), os.getpid(), pid)
"""


def test_a_forked_child_records_its_flows_without_waiting_on_the_parents_recorder(tmp_path: Path) -> None:
    result = run_script(tmp_path, FORKED)
    assert result.returncode == 0, result.stderr
    exit_code, seconds, parent_pid, child_pid = result.stdout.split()
    assert exit_code == "0" and float(seconds) < 20, result.stderr
    runs = {run["flow_name"]: run for run in cli_json(tmp_path, "ls")}
    assert {name: run["state_type"] for name, run in runs.items()} == {
        "parent_flow": "COMPLETED", "child_flow": "COMPLETED",
    }  # fmt: skip
    assert runs["child_flow"]["task_run_count"] == 2
    # The child worked out its own pid after the fork, not the parent's it inherited.
    assert (runs["parent_flow"]["pid"], runs["child_flow"]["pid"]) == (int(parent_pid), int(child_pid))
    child_tasks = cli_json(tmp_path, "show", runs["child_flow"]["id"])["task_runs"]
    assert {t["pid"] for t in child_tasks} == {int(child_pid)}


def test_after_reset_recorder_the_next_flow_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater import flow, task
    from headwater.api import reset_recorder

    @task
    def one() -> int:
        return 1

    @flow
    def counted() -> int:
        return one()

    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    reset_recorder()  # whatever recorder an earlier test started, this one starts afresh
    try:
        counted()
        reset_recorder()
        counted()
    finally:
        reset_recorder()
    runs = cli_json(tmp_path, "ls")
    assert [run["state_type"] for run in runs] == ["COMPLETED", "COMPLETED"]
    assert all(run["task_run_count"] == 1 for run in runs)


def test_a_10000_deep_parameter_is_recorded_as_a_marker_and_the_flow_runs(tmp_path: Path) -> None:
    code = """
    from headwater import flow

    class Opaque:
        def __init__(self, inner):
            self.inner = inner
        def __repr__(self):
            return f"Opaque({self.inner!r})"

    @flow
    def deep(nested: list, wrapped: object) -> str:
        return "ran"

    nested: list = []
    for _ in range(10_000):
        nested = [nested]
    print(deep(nested, Opaque(nested)))
    """
    result = run_script(tmp_path, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran"
    (run,) = cli_json(tmp_path, "ls")
    assert run["state_type"] == "COMPLETED"
    kept = run["parameters"]["nested"]
    for _ in range(6):  # containers kept to 8 levels, the parameters dict the first
        (kept,) = kept
    assert kept == ["<nested deeper than 8 levels>"]
    assert run["parameters"]["wrapped"] == "<Opaque object: repr failed with RecursionError>"


NEIGHBOURS = """
import threading
from headwater import flow, task

@task
def work(i: int) -> int:
    return i

@task(task_run_name="bad\\ud800name", tags=["tag\\udcff"])
def oddly_named() -> int:
    raise ValueError("message \\udcff from a filename")

@flow
def neighbour(n: int) -> int:
    return sum(work.map(range(n)).result())

@flow
def offender(label: str) -> int:
    oddly_named.submit().wait()
    return sum(work.map(range(5)).result())

results = {}
other = threading.Thread(target=lambda: results.update(neighbour=neighbour(199)))
other.start()
results["offender"] = offender("odd\\ud800")
other.join()
print(results["neighbour"], results["offender"])
"""


@pytest.mark.parametrize("where", ["embedded", "standalone"])
def test_a_lone_surrogate_in_one_flow_reaches_no_other_run(tmp_path: Path, where: str) -> None:
    env: dict[str, str] | None = None
    server = None
    if where == "standalone":
        server, url = start_server_process(tmp_path / "server-home")
        env = {"HEADWATER_API_URL": url}
    try:
        result = run_script(tmp_path, NEIGHBOURS, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-2:] == ["19701", "10"]
        runs = {run["flow_name"]: run for run in cli_json(tmp_path, "ls", env=env)}
        assert set(runs) == {"neighbour", "offender"}
        assert runs["neighbour"]["parameters"] == {"n": 199}
        assert runs["offender"]["parameters"] == {"label": "odd\ufffd"}
        assert all(run["name"] and run["state_type"] == "COMPLETED" for run in runs.values())
        assert runs["neighbour"]["task_run_count"] == 199 and runs["offender"]["task_run_count"] == 6
        shown = cli_json(tmp_path, "show", runs["offender"]["id"], env=env)
        (odd,) = [t for t in shown["task_runs"] if t["task_name"] == "oddly_named"]
        assert (odd["name"], odd["state_type"]) == ("bad\ufffdname", "FAILED")
        assert odd["states"][-1]["message"] == "ValueError: message \ufffd from a filename"
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)


OUTAGE = """
import json, pathlib, sys, threading, time
from headwater import RecordingError, flow, get_run_context, task
from headwater.api import get_recorder

gates = [pathlib.Path(p) for p in {gates!r}]
second_lost_some = threading.Event()

say_lock = threading.Lock()

def say(**fields):
    with say_lock:  # one whole line at a time from either flow's thread
        sys.stdout.write(json.dumps(fields) + "\\n")
        sys.stdout.flush()

def wait_for(gate):
    while not gate.exists():
        time.sleep(0.02)

@task
def work(i: int) -> int:
    return i

def phase(flow_name, name):
    futures = work.map(range(5))
    futures.wait()
    say(flow=flow_name, phase=name, ids=[str(f.run_id) for f in futures])

@flow
def first() -> None:
    say(flow="first", phase="flow", ids=[str(get_run_context().flow_run.id)])
    phase("first", "before")
    get_recorder().flush(10)
    say(ready="first")
    wait_for(gates[0])  # the server is dead from here on
    phase("first", "down")
    second_lost_some.wait()
    # returns: its end waits out the grace and raises for what was dropped, the second
    # flow's records dropped with them included

@flow
def second() -> None:
    say(flow="second", phase="flow", ids=[str(get_run_context().flow_run.id)])
    phase("second", "before")
    get_recorder().flush(10)
    say(ready="second")
    wait_for(gates[0])
    phase("second", "down")
    second_lost_some.set()
    wait_for(gates[1])  # the server is back
    phase("second", "after")

def run(fn):
    try:
        fn()
    except RecordingError as exc:
        say(raised=fn.__name__, ids=sorted(str(r) for r in exc.run_ids))
        raise

other = threading.Thread(target=run, args=(first,))
other.start()
try:
    run(second)
finally:
    other.join()
"""


def test_after_an_outage_every_flow_raises_for_its_own_lost_runs(tmp_path: Path) -> None:
    from tests.api.test_processes import _free_port

    home, port = tmp_path / "server-home", _free_port()
    server, url = start_server_process(home, "--port", str(port))
    gates = [tmp_path / "server-dead", tmp_path / "server-back"]
    env = {
        **os.environ, "HEADWATER_HOME": str(tmp_path), "HEADWATER_API_URL": url,
        "HEADWATER_RECORDER_GRACE_SECONDS": "2",  # over the 1 s longest reconnect backoff
    }  # fmt: skip
    proc = subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(OUTAGE.format(gates=[str(g) for g in gates]))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    runs: dict[tuple[str, str], set[str]] = {}
    raised: dict[str, set[str]] = {}
    ready: set[str] = set()

    def read_until(done: Any) -> None:
        assert proc.stdout is not None
        while not done():
            line = proc.stdout.readline()
            assert line, f"flow process ended early: {proc.stderr.read() if proc.stderr else ''}"
            event = json.loads(line)
            if "phase" in event:
                runs[event["flow"], event["phase"]] = set(event["ids"])
            elif "raised" in event:
                raised[event["raised"]] = set(event["ids"])
            else:
                ready.add(event["ready"])

    try:
        read_until(lambda: ready == {"first", "second"})
        server.kill()  # SIGKILL, after both flows' first records were committed
        server.wait(timeout=10)
        gates[0].write_text("")
        read_until(lambda: "first" in raised)  # first's end waited out the grace
        server, _ = start_server_process(home, "--port", str(port))
        gates[1].write_text("")
        read_until(lambda: "second" in raised)
        assert proc.wait(timeout=30) != 0
        shown = cli_json(tmp_path, "show", next(iter(runs["second", "flow"])), env={"HEADWATER_API_URL": url})
    finally:
        proc.kill()
        server.terminate()
        server.wait(timeout=10)

    # Each flow names its own lost runs, and only those: the first its flow run (its final
    # state went with them) and the task runs it made while the server was away; the second
    # only the task runs it made then, although the first flow's end saw them dropped.
    assert raised["first"] == runs["first", "flow"] | runs["first", "down"]
    assert raised["second"] == runs["second", "down"]
    recorded = {t["id"] for t in shown["task_runs"]}
    assert recorded == runs["second", "before"] | runs["second", "after"]
