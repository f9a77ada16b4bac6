"""A misconfigured state service fails a flow before its body runs, and says what to fix.

Real processes: a standalone server started with a token, and flow processes whose body
leaves a marker file, so a body that ran despite the misconfiguration shows.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from headwater.api import ClientConfigError, StateClient
from headwater.api.client import Target
from headwater.runtime.recording import RunServices
from tests.api.helpers import start_server_process, stop_process
from tests.runtime.test_recording import run_script

TOKEN = "right-token-5f2c9a"
WRONG = "wrong-token-77d1e0"

MARKED = """
import pathlib
from headwater import flow, task

@task
def one() -> int:
    return 1

@flow
def marked() -> int:
    pathlib.Path({marker!r}).write_text("the body ran")
    return one()

print(marked())
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    proc, url = start_server_process(tmp_path_factory.mktemp("server-home"), "--token", TOKEN)
    yield url
    stop_process(proc)


def _run_marked(tmp_path: Path, env: dict[str, str]) -> tuple[Any, float, Path]:
    marker = tmp_path / "marker"
    started = time.monotonic()
    result = run_script(tmp_path, MARKED.format(marker=str(marker)), env=env)
    return result, time.monotonic() - started, marker


def test_a_wrong_token_fails_the_flow_before_its_body_runs(tmp_path: Path, server: str) -> None:
    result, seconds, marker = _run_marked(
        tmp_path, {"HEADWATER_API_URL": server, "HEADWATER_API_TOKEN": WRONG}
    )
    assert result.returncode != 0
    assert not marker.exists()
    assert seconds < 15, seconds  # it was ~31 s: the body ran, then the grace period
    assert "Unauthenticated" in result.stderr and server in result.stderr
    assert "HEADWATER_API_TOKEN" in result.stderr and "HEADWATER_RECORD=0" in result.stderr
    assert WRONG not in result.stderr and TOKEN not in result.stderr


def test_the_right_token_records_as_before(tmp_path: Path, server: str) -> None:
    result, _, marker = _run_marked(
        tmp_path, {"HEADWATER_API_URL": server, "HEADWATER_API_TOKEN": TOKEN}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1" and marker.exists()


def test_an_unreachable_url_fails_fast_before_the_body_runs(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"grpc://127.0.0.1:{sock.getsockname()[1]}"
    result, seconds, marker = _run_marked(
        tmp_path, {"HEADWATER_API_URL": url, "HEADWATER_API_CONNECT_TIMEOUT_SECONDS": "1"}
    )
    assert result.returncode != 0
    assert not marker.exists()
    assert seconds < 15, seconds
    assert "ServiceUnavailable" in result.stderr and f"{url} is unreachable" in result.stderr
    assert "headwater server start" in result.stderr and "unset HEADWATER_API_URL" in result.stderr


def test_plain_grpc_to_a_tls_address_is_a_tls_error_not_a_wait(tmp_path: Path, server: str) -> None:
    tls_url = server.replace("grpc://", "grpcs://")
    result, seconds, marker = _run_marked(
        tmp_path, {"HEADWATER_API_URL": tls_url, "HEADWATER_API_TOKEN": TOKEN}
    )
    assert result.returncode != 0 and not marker.exists()
    assert seconds < 15, seconds
    assert "ClientConfigError" in result.stderr and "TLS does not fit" in result.stderr
    assert TOKEN not in result.stderr


def test_a_token_in_the_url_is_refused_without_showing_it(tmp_path: Path, server: str) -> None:
    with_userinfo = server.replace("grpc://", f"grpc://{TOKEN}@")
    result, _, marker = _run_marked(tmp_path, {"HEADWATER_API_URL": with_userinfo})
    assert result.returncode != 0 and not marker.exists()
    assert "carries credentials" in result.stderr and "HEADWATER_API_TOKEN" in result.stderr
    assert TOKEN not in result.stderr
    assert server.replace("grpc://", "grpc://***@") in result.stderr


@pytest.mark.parametrize(
    "url",
    [
        f"grpc://user:{TOKEN}@localhost:4200",
        f"grpc://{TOKEN}@localhost",
        f"grpc://localhost:4200/?token={TOKEN}",
        f"http://localhost:{TOKEN}",
        f"{TOKEN}@localhost:4200",
    ],
)
def test_no_malformed_url_echoes_a_token(url: str) -> None:
    with pytest.raises(ClientConfigError) as err:
        Target.resolve(url, None, None)
    assert TOKEN not in str(err.value)
    assert isinstance(err.value, ValueError)  # as before, for callers that catch ValueError


def test_no_repr_shows_the_token() -> None:
    target = Target.resolve("grpc://localhost:4200", TOKEN, None)
    assert TOKEN not in repr(target) and "localhost:4200" in repr(target)
    assert TOKEN not in repr(RunServices(("grpc://localhost:4200", TOKEN, None)))
    with StateClient("grpc://localhost:4200", token=TOKEN) as client:
        assert TOKEN not in repr(client.target)


def test_settings_repr_hides_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.api import get_settings

    monkeypatch.setenv("HEADWATER_API_TOKEN", TOKEN)
    settings = get_settings()
    assert settings.api_token == TOKEN and TOKEN not in repr(settings)


@pytest.mark.parametrize(
    ("details", "tls"),
    [
        ("Ssl handshake failed: SSL_ERROR_SSL: error:0A00010B:SSL routines::wrong version number", True),
        ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:4200: "
         "Ssl handshake failed (TSI_PROTOCOL_FAILURE)", True),
        ("certificate verify failed", True),
        # Seen when 16 flow processes start at once against one server: busy, not misconfigured.
        ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:44481: "
         "tcp handshaker shutdown", False),
        ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1: "
         "Connection refused", False),
        ("Deadline Exceeded", False),
    ],
)
def test_only_tls_failures_are_final_in_the_preflight(details: str, tls: bool) -> None:
    from headwater.api.client import looks_like_tls_failure

    assert looks_like_tls_failure(details) is tls
