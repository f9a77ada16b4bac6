"""Pausing a flow run and resuming (or rejecting) it from another process, end to end with real processes:
the flow runs in a child process (on the embedded default, or against a standalone gRPC
server on 127.0.0.1), `headwater runs resume` or `resume_flow_run` in another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.api import StateServer

FLOW = textwrap.dedent('''
    import asyncio, sys, pathlib
    from headwater import (apause_flow_run, flow, get_run_context, pause_flow_run, RunInput,
                           PausedRunTimeout, PauseRejected)
    out, mode, timeout = pathlib.Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])

    class Approval(RunInput):
        approved: bool
        note: str = ""

    def failed(flow, run, state):
        (out / "on_failure").write_text(state.message or "")

    def started() -> None:
        (out / "id").write_text(str(get_run_context().flow_run.id))

    @flow(on_failure=[failed])
    def typed() -> str:
        started()
        answer = pause_flow_run(wait_for_input=Approval, timeout=timeout)
        return f"{type(answer).__name__} approved={answer.approved} note={answer.note}"

    @flow(on_failure=[failed])
    def builtin() -> str:
        started()
        value = pause_flow_run(wait_for_input=int, timeout=timeout)
        return f"{type(value).__name__} {value}"

    @flow(retries=1, on_failure=[failed])
    def keyed() -> str:
        started()
        answer = pause_flow_run(wait_for_input=Approval, timeout=timeout, key="approve")
        attempts = out / "attempts"
        attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
        if len(attempts.read_text()) == 1:
            raise ValueError("first attempt fails after its pause")
        return f"attempts={len(attempts.read_text())} approved={answer.approved}"

    @flow(on_failure=[failed])
    async def in_async() -> str:
        started()
        ticks = 0
        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        ticker = asyncio.create_task(tick())
        answer = await apause_flow_run(wait_for_input=Approval, timeout=timeout)
        ticker.cancel()
        return f"Approval approved={answer.approved} loop_ran={ticks > 5}"

    flows = {"typed": typed, "builtin": builtin, "keyed": keyed, "in_async": in_async}
    try:
        result = flows[mode]()
        print("RESULT", asyncio.run(result) if asyncio.iscoroutine(result) else result)
    except PausedRunTimeout as exc:
        print("RAISED PausedRunTimeout", exc)
    except PauseRejected as exc:
        print(f"RAISED PauseRejected by={exc.by} reason={exc.reason}")
''')
HEADWATER = str(Path(sys.executable).with_name("headwater"))


def _start(tmp_path: Path, mode: str, timeout: float = 30) -> tuple[subprocess.Popen[str], str]:
    (tmp_path / "flow.py").write_text(FLOW)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "flow.py"), str(tmp_path), mode, str(timeout)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    give_up = time.time() + 30  # a loaded machine starts interpreters slowly
    # The file can exist before its text is written: wait for the text (a whole UUID).
    while len(run_id := (tmp_path / "id").read_text() if (tmp_path / "id").exists() else "") < 36:
        assert proc.poll() is None and time.time() < give_up, proc.communicate()[0]
        time.sleep(0.02)
    while _state(run_id) != "PAUSED":
        assert proc.poll() is None and time.time() < give_up, proc.communicate()[0]
        time.sleep(0.02)
    return proc, run_id


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HEADWATER, "runs", *args], capture_output=True, text=True, timeout=20)


def _show(run_id: str) -> dict:  # type: ignore[type-arg]
    done = _cli("show", run_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _state(run_id: str) -> str | None:
    done = _cli("show", run_id, "--json")
    return json.loads(done.stdout)["state_type"] if done.returncode == 0 else None


def _result(proc: subprocess.Popen[str]) -> str:
    output = proc.communicate(timeout=10)[0]
    lines = [line for line in output.splitlines() if line.startswith(("RESULT", "RAISED"))]
    assert lines, output
    return lines[-1]


def test_a_typed_pause_refuses_invalid_input_then_resumes_from_the_cli(tmp_path: Path) -> None:
    proc, run_id = _start(tmp_path, "typed")
    listed = _cli("ls", "--state", "PAUSED", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    shown = _show(run_id)
    assert shown["pause"]["input_schema"]["required"] == ["approved"]
    assert shown["pause"]["resume_command"] == f"headwater runs resume {run_id} --set approved=<boolean>"
    assert "resume with:" in _cli("show", run_id).stdout

    refused = _cli("resume", run_id, "--set", "approved=maybe", "--set", "colour=red")
    assert refused.returncode == 1
    assert "approved: 'maybe' is not of type 'boolean'" in refused.stderr
    assert "colour" in refused.stderr  # RunInput forbids fields the flow does not know
    assert _state(run_id) == "PAUSED"

    done = _cli("resume", run_id[:8], "--set", "approved=true", "--set", "note=ship it", "--by", "alice")
    assert done.returncode == 0, done.stderr
    assert _result(proc) == "RESULT Approval approved=True note=ship it"
    states = _show(run_id)["states"]
    assert [s["type"] for s in states][-3:] == ["PAUSED", "RUNNING", "COMPLETED"]
    assert states[-2]["message"] == (
        "resumed by alice with input {\"approved\": true, \"note\": \"ship it\"} (pause 'pause-1')")
    again = _cli("resume", run_id, "--set", "approved=true")
    assert again.returncode == 1 and "not PAUSED" in again.stderr


def test_a_pause_that_times_out_fails_the_run_and_raises(tmp_path: Path) -> None:
    proc, run_id = _start(tmp_path, "typed", timeout=1)
    started = time.time()
    assert _result(proc).startswith("RAISED PausedRunTimeout")
    assert time.time() - started < 4
    shown = _show(run_id)
    assert shown["state_type"] == "FAILED"
    assert "the pause timed out" in shown["states"][-1]["message"]
    assert [s["type"] for s in shown["states"]][-2:] == ["PAUSED", "FAILED"]  # recorded once, by the service
    assert "the pause timed out" in (tmp_path / "on_failure").read_text()  # the run did fail: hooks run


def test_a_builtin_type_pause_gives_the_flow_the_bare_value(tmp_path: Path) -> None:
    proc, run_id = _start(tmp_path, "builtin")
    assert _show(run_id)["pause"]["resume_command"].endswith("--input <integer>")
    refused = _cli("resume", run_id, "--input", '"five"')
    assert refused.returncode == 1 and "value: 'five' is not of type 'integer'" in refused.stderr
    done = _cli("resume", run_id, "--input", "5")
    assert done.returncode == 0, done.stderr
    assert _result(proc) == "RESULT int 5"
    assert not (tmp_path / "on_failure").exists()


def test_a_resumed_key_does_not_pause_again_when_the_flow_retries(tmp_path: Path) -> None:
    proc, run_id = _start(tmp_path, "keyed")
    assert _cli("resume", run_id, "--input", '{"approved": false}').returncode == 0
    assert _result(proc) == "RESULT attempts=2 approved=False"  # the retry took the first answer
    types = [s["type"] for s in _show(run_id)["states"]]
    assert types.count("PAUSED") == 1 and types[-1] == "COMPLETED"


def test_an_async_flow_awaits_its_pause_and_resume_flow_run_resumes_it(tmp_path: Path) -> None:
    proc, run_id = _start(tmp_path, "in_async")
    code = (f"from headwater import resume_flow_run; "
            f"print(resume_flow_run({run_id!r}, {{'approved': True}}, by='bob').by)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert done.stdout.strip() == "bob", done.stderr
    assert _result(proc) == "RESULT Approval approved=True loop_ran=True"


@pytest.fixture
def standalone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = StateServer(tmp_path / "server-home", port=0, token="pause-token", synchronous="NORMAL")
    url = server.start()
    monkeypatch.setenv("HEADWATER_API_URL", url)
    monkeypatch.setenv("HEADWATER_API_TOKEN", "pause-token")
    yield url
    server.stop(0.5)


def test_resume_through_a_standalone_server(tmp_path: Path, standalone: str) -> None:
    assert os.environ["HEADWATER_API_URL"] == standalone
    proc, run_id = _start(tmp_path, "typed")
    refused = _cli("resume", run_id, "--input", '{"approved": "no"}')
    assert refused.returncode == 1 and "approved: 'no' is not of type 'boolean'" in refused.stderr
    assert _cli("resume", run_id, "--input", '{"approved": true}', "--by", "carol").returncode == 0
    assert _result(proc) == "RESULT Approval approved=True note="
    assert "resumed by carol" in _show(run_id)["states"][-2]["message"]


def test_cancelling_a_paused_run_wakes_its_body_and_ends_it_cancelled(tmp_path: Path) -> None:
    proc, run_id = _start(tmp_path, "typed")
    done = _cli("cancel", run_id, "--deadline", "10")
    assert done.returncode == 0, done.stderr
    output = proc.communicate(timeout=10)[0]
    assert "CancelledRun" in output
    assert _state(run_id) == "CANCELLED"
    assert not (tmp_path / "on_failure").exists()


def test_rejecting_a_paused_run_from_the_cli_fails_it_and_raises_in_the_flow(tmp_path: Path) -> None:
    proc, run_id = _start(tmp_path, "typed")
    done = _cli("reject", run_id[:8], "--reason", "not this week", "--by", "alice")
    assert done.returncode == 0, done.stderr
    assert "rejected by alice: not this week" in done.stdout
    assert _result(proc) == "RAISED PauseRejected by=alice reason=not this week"
    shown = _show(run_id)
    assert shown["state_type"] == "FAILED"
    assert [s["type"] for s in shown["states"]][-2:] == ["PAUSED", "FAILED"]  # recorded once, by the service
    assert shown["states"][-1]["message"] == "rejected by alice: not this week"
    assert (tmp_path / "on_failure").read_text() == "rejected by alice: not this week"  # the run failed
    again = _cli("reject", run_id)
    assert again.returncode == 1 and "not PAUSED" in again.stderr
    assert _cli("resume", run_id, "--set", "approved=true").returncode == 1  # decided once


def test_reject_flow_run_wakes_an_async_pause(tmp_path: Path) -> None:
    proc, run_id = _start(tmp_path, "in_async")
    code = (f"from headwater import reject_flow_run; "
            f"print(reject_flow_run({run_id!r}, by='bob').message)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert done.stdout.strip() == "rejected by bob", done.stderr
    assert _result(proc) == "RAISED PauseRejected by=bob reason=None"
    assert _show(run_id)["states"][-1]["message"] == "rejected by bob"


def test_reject_through_a_standalone_server(tmp_path: Path, standalone: str) -> None:
    proc, run_id = _start(tmp_path, "typed")
    done = _cli("reject", run_id, "--reason", "wrong numbers", "--by", "carol")
    assert done.returncode == 0, done.stderr
    assert _result(proc) == "RAISED PauseRejected by=carol reason=wrong numbers"
    assert _show(run_id)["states"][-1]["message"] == "rejected by carol: wrong numbers"
    assert (tmp_path / "on_failure").read_text() == "rejected by carol: wrong numbers"


def test_rejecting_a_run_that_is_not_paused_is_refused(tmp_path: Path) -> None:
    proc, run_id = _start(tmp_path, "typed")
    assert _cli("resume", run_id, "--set", "approved=true").returncode == 0
    assert _result(proc).startswith("RESULT")
    refused = _cli("reject", run_id, "--reason", "too late")
    assert refused.returncode == 1
    assert "is COMPLETED, not PAUSED; there is nothing to reject" in refused.stderr
    assert _show(run_id)["state_type"] == "COMPLETED"
