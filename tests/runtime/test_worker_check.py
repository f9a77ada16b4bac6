"""The flow's preflight check (`runtime/worker_check.py`) and how a flow uses the runner hook:
once per runner start, never with recording off, and a runner that cannot start or whose
workers fail ends the flow run CRASHED with the error, which is raised.

The check runs here against real servers (the embedded one, a closed port); the runners that
fail are runners of the user's own, as anyone may write (`TaskRunner` is public)."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from typing import Any

import pytest

from headwater import flow, task
from headwater.errors import PreflightFailed
from headwater.runners import ConcurrentTaskRunner
from headwater.runners.base import WorkerCheck
from headwater.runtime.recording import NO_SERVICES, RunServices
from headwater.runtime.worker_check import FlowPreflight, compatible, preflight_for, running_version
from tests.runners.cluster_processes import free_port
from tests.runtime.test_recording import cli_json


@pytest.fixture
def fresh_recorder() -> Any:
    from headwater.api import reset_recorder

    reset_recorder()
    yield
    reset_recorder()


@pytest.mark.parametrize(
    ("here", "flow_version", "fits"),
    [
        ("0.1.0", "0.1.0", True),
        ("0.1.3", "0.1.0", True),
        ("1.4.0", "1.4.2rc1", True),
        ("0.2.0", "0.1.0", False),
        ("1.1.0", "0.1.0", False),
        ("unknown", "0.1.0", False),
        ("unknown", "unknown", True),
    ],
)
def test_compatible_means_the_same_major_and_minor_version(here: str, flow_version: str, fits: bool) -> None:
    assert compatible(here, flow_version) is fits


@pytest.mark.usefixtures("fresh_recorder")
def test_the_check_passes_where_the_service_answers_and_says_why_not_elsewhere() -> None:
    from headwater.api import recorder_target

    url, token, ca = recorder_target()
    check = preflight_for(RunServices((url, token, ca)))
    assert check is not None and check.version == running_version() and check() is None
    assert token is not None and token not in repr(check)
    assert pickle.loads(pickle.dumps(check)) == check  # it travels to the workers

    closed = f"grpc://127.0.0.1:{free_port()}"
    started = time.monotonic()
    problem = FlowPreflight(running_version(), closed, token, None, 0.5)()
    assert time.monotonic() - started < 3
    assert problem is not None and f"the state service at {closed} is unreachable" in problem
    assert "loopback" in problem and "HEADWATER_API_URL" in problem and "HEADWATER_RECORD=0" in problem

    newer = FlowPreflight("99.0.0", url, token, ca, 0.5)()
    assert newer is not None and f"runs headwater {running_version()} but the flow runs 99.0.0" in newer


def test_no_check_without_recording() -> None:
    assert preflight_for(NO_SERVICES) is None


class CheckingRunner(ConcurrentTaskRunner):
    """A runner of the user's own whose 'workers' are this process: it runs the check here
    and writes down each time it did, or fails to start, or fails every check."""

    def __init__(self, log: Path, fail_start: bool = False, problem: str | None = None) -> None:
        super().__init__(max_workers=2)
        self.log, self.fail_start, self.problem = log, fail_start, problem

    def start(self) -> None:
        if self.fail_start:
            raise ConnectionRefusedError("no cluster at that address")
        super().start()

    def preflight(self, check: WorkerCheck) -> None:
        with open(self.log, "a") as file:
            file.write(f"{check() or 'fit'}\n")
        if self.problem is not None:
            raise PreflightFailed(f"1 of 1 workers cannot run this flow's task runs: here: {self.problem}")

    def duplicate(self) -> CheckingRunner:
        return CheckingRunner(self.log, self.fail_start, self.problem)


@task
def double(x: int) -> int:
    return 2 * x


@pytest.mark.usefixtures("fresh_recorder")
def test_the_check_runs_once_per_runner_start_not_per_task(tmp_path: Path) -> None:
    log = tmp_path / "checks"

    @flow(task_runner=CheckingRunner(log))
    def pipeline(n: int) -> int:
        return sum(double.map(range(n)).result())

    assert pipeline(20) == 2 * sum(range(20))
    assert pipeline(3) == 6
    assert log.read_text().split() == ["fit", "fit"]


def test_with_recording_off_there_is_no_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_RECORD", "0")
    log = tmp_path / "checks"

    @flow(task_runner=CheckingRunner(log, problem="would fail"))
    def pipeline() -> int:
        return double(2)

    assert pipeline() == 4
    assert not log.exists()


@pytest.mark.parametrize(
    ("runner_options", "error", "said"),
    [
        ({"fail_start": True}, ConnectionRefusedError, "no cluster at that address"),
        ({"problem": "cannot import headwater"}, PreflightFailed, "cannot import headwater"),
    ],
)
@pytest.mark.usefixtures("fresh_recorder")
def test_a_runner_that_cannot_start_or_fails_its_preflight_crashes_the_flow_before_its_body(
    tmp_path: Path, runner_options: dict[str, Any], error: type[Exception], said: str
) -> None:
    crashed: list[str] = []
    marker = tmp_path / "body-ran"

    @flow(
        task_runner=CheckingRunner(tmp_path / "checks", **runner_options),
        on_crashed=[lambda flow, run, state: crashed.append(str(state.message))],
    )
    def doomed() -> None:
        marker.touch()

    with pytest.raises(error, match=said):
        doomed(return_state=True)  # raised all the same, as an interrupt is
    assert not marker.exists()
    assert len(crashed) == 1 and "the task runner did not start" in crashed[0] and said in crashed[0]
    (run,) = cli_json(Path(os.environ["HEADWATER_HOME"]), "ls")
    assert run["state_type"] == "CRASHED" and run["task_run_count"] == 0
