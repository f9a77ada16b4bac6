"""A command imports what its verb needs and nothing more (issue #13), checked by the modules
a fresh interpreter has loaded rather than by a wall clock.

`import headwater` (the runtime, ~100 ms) is paid by every command, since `headwater.cli` lives
in that package. `runs ls` on the home's database loads no gRPC either: `api/errors.py`, which
the storage raises from, builds its status-code tables on first use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from headwater.api.settings import DEFAULT_PORT, get_settings
from headwater.cli import _server
from headwater.cli._source import where_to_read

#: Modules no verb reading the home's database needs.
SERVICE_ONLY = ("grpc", "pydantic", "pydantic_settings", "headwater.api.models", "headwater.api.codec",
                "headwater.api.client", "headwater.api.server", "headwater.api.cache_client")


def _loaded_after(*argv: str) -> tuple[str, set[str]]:
    """What `headwater ARGV` printed, and the modules loaded when it was done, in a fresh
    interpreter."""
    code = (
        "import json, sys\n"
        "from headwater.cli._main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "sys.stdout.flush()\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=30, check=True)
    return done.stdout, set(json.loads(done.stderr.splitlines()[-1]))


def test_version_loads_nothing_but_headwater() -> None:
    out, loaded = _loaded_after("--version")
    assert out.startswith("headwater ")
    assert not {m for m in loaded if m.startswith(("headwater.api", "grpc", "pydantic", "rich"))}


def test_runs_ls_on_the_database_loads_no_models_client_or_pydantic(recorded) -> None:  # type: ignore[no-untyped-def]
    out, loaded = _loaded_after("runs", "ls")
    assert "flow runs" in out and "etl" in out  # the table, as before
    assert loaded.isdisjoint(SERVICE_ONLY), loaded & set(SERVICE_ONLY)


def test_runs_ls_through_a_server_still_works(recorded, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The client is loaded only when a server is named, and then it is."""
    srv, _ = recorded
    monkeypatch.setenv("HEADWATER_API_URL", srv.url)
    monkeypatch.setenv("HEADWATER_API_TOKEN", "cli-token")
    out, loaded = _loaded_after("runs", "ls", "--json")
    assert len(json.loads(out)) == 2
    assert "headwater.api.client" in loaded


@pytest.mark.parametrize("env", [
    {},
    {"HEADWATER_HOME": "/srv/hw"},
    {"headwater_home": "/srv/lower"},
    {"HEADWATER_HOME": "~/hw", "HEADWATER_API_URL": "grpc://example:4200"},
    {"HEADWATER_API_URL": ""},
    {"Headwater_Api_Url": "grpcs://mixed:1"},
], ids=repr)
def test_where_to_read_answers_as_the_settings_do(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`_source.where_to_read` restates two settings without pydantic; they must not drift."""
    for name in ("HEADWATER_HOME", "HEADWATER_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = get_settings()
    assert where_to_read() == (settings.api_url, settings.db_path)
    assert where_to_read()[1].parent != Path("~/hw")  # expanded, as db_path is


def test_server_start_help_names_the_settings_default_port() -> None:
    assert _server._DEFAULT_PORT == DEFAULT_PORT
