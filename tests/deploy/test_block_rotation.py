"""A rotated secret reaches a deployment's next run without redeploying: the run's process
loads the block when it runs, through the same service, with the same key."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import pytest

from .test_workers import _worker, server  # noqa: F401 - the fixture

FLOW = textwrap.dedent(
    """
    from pathlib import Path
    from headwater import flow
    from headwater.blocks import Secret

    @flow
    def use_key(out: str) -> None:
        Path(out).write_text(Secret.load("api-key").get())
    """
)


def test_a_deployments_next_run_uses_the_rotated_secret(tmp_path: Path, server: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from headwater import run_deployment
    from headwater.blocks import Secret
    from headwater.deploy.connection import deploy_client
    from headwater.deploy.deployments import deploy, to_deployment
    from headwater.deploy.entrypoints import load_flow

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the key file, shared with the worker
    Secret(value="first-key-value").save("api-key")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "flows.py").write_text(FLOW)
    with deploy_client() as client:
        client.create_pool("pool")
    (dep,) = deploy(to_deployment(load_flow(f"{tmp_path / 'code' / 'flows.py'}:use_key"), "d"), work_pool_name="pool")
    worker = _worker(tmp_path, "pool", "w")
    try:
        first, second = tmp_path / "first.txt", tmp_path / "second.txt"
        assert run_deployment(dep.name, parameters={"out": str(first)}, timeout=120).state_type == "COMPLETED"
        Secret(value="rotated-key-value").save("api-key", overwrite=True)
        assert run_deployment(dep.name, parameters={"out": str(second)}, timeout=120).state_type == "COMPLETED"
        assert first.read_text() == "first-key-value" and second.read_text() == "rotated-key-value"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
