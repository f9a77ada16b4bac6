"""Cancelling a flow run from another process, end to end with real processes: the flow runs
in a child process on the embedded default, `headwater runs cancel` in another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

FLOW = textwrap.dedent('''
    import asyncio, sys, time, pathlib
    from headwater import flow, task, get_run_context
    from headwater.task_runners import ThreadPoolTaskRunner
    out = pathlib.Path(sys.argv[1])

    @task
    def spin() -> None:
        while True:
            time.sleep(0.01)

    @task
    async def wait_long() -> None:
        await asyncio.sleep(60)

    def hook(flow, run, state):
        (out / "hook").write_text(f"{state.type.value}|{state.message}")

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4), on_cancellation=[hook])
    def main() -> None:
        a, b = spin.submit(), wait_long.submit()
        (out / "id").write_text(str(get_run_context().flow_run.id))
        a.result(); b.result()

    main()
''')
HEADWATER = str(Path(sys.executable).with_name("headwater"))


def _start_flow(tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    (tmp_path / "flow.py").write_text(FLOW)
    proc = subprocess.Popen([sys.executable, str(tmp_path / "flow.py"), str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    give_up = time.time() + 30  # a loaded machine starts interpreters slowly
    # The file can exist before its text is written: wait for the text (a whole UUID).
    while len(run_id := (tmp_path / "id").read_text() if (tmp_path / "id").exists() else "") < 36:
        assert proc.poll() is None and time.time() < give_up, proc.communicate()[0]
        time.sleep(0.02)
    time.sleep(0.2)  # its task runs have started
    return proc, run_id


def _cancel(run_id: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HEADWATER, "runs", "cancel", run_id, *args], capture_output=True, text=True, timeout=20)


def _show(run_id: str) -> str:
    return subprocess.run([HEADWATER, "runs", "show", run_id, "--json"], capture_output=True, text=True).stdout


def test_cancel_from_the_cli_interrupts_thread_and_async_tasks_and_the_process_exits(tmp_path: Path) -> None:
    proc, run_id = _start_flow(tmp_path)
    started = time.time()
    done = _cancel(run_id, "--deadline", "10")
    assert done.returncode == 0, done.stderr
    assert "CANCELLED" in done.stdout
    assert "interrupted: " in done.stdout and "spin-0" in done.stdout  # the final state's message
    assert time.time() - started < 3
    output = proc.communicate(timeout=10)[0]
    assert proc.returncode != 0 and "CancelledRun" in output
    kind, message = (tmp_path / "hook").read_text().split("|", 1)
    assert kind == "CANCELLED" and "spin-0" in message and "wait_long-0" in message
    shown = _show(run_id)
    assert shown.count('"CANCELLED"') >= 3  # the flow run and both task runs
    again = _cancel(run_id)
    assert again.returncode == 1 and "already finished" in again.stderr


def test_a_hung_flow_process_is_cancelled_at_the_deadline(tmp_path: Path) -> None:
    proc, run_id = _start_flow(tmp_path)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        started = time.time()
        done = _cancel(run_id, "--deadline", "1")
        assert done.returncode == 0, done.stderr
        assert 1 <= time.time() - started < 4
        assert "did not acknowledge" in _show(run_id)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    proc.communicate(timeout=10)  # it wakes, acts on the cancel, and its report is refused
    assert '"CANCELLED"' in _show(run_id) and not (tmp_path / "hook").read_text().startswith("COMPLETED")
