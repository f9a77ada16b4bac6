"""`headwater variable ...`: the real command in subprocesses, on this test's home."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from .helpers import HEADWATER


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HEADWATER, *argv], capture_output=True, text=True, timeout=60, env=dict(os.environ))


def _json(*argv: str) -> Any:
    done = _run(*argv, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_variables_set_get_list_and_unset() -> None:
    assert _json("variable", "set", "region", '{"name": "eu"}', "--tag", "infra")["value"] == {"name": "eu"}
    assert _json("variable", "get", "region")["value"] == {"name": "eu"}
    assert _run("variable", "get", "region").stdout.strip() == '{"name": "eu"}'
    refused = _run("variable", "set", "region", "x")
    assert refused.returncode == 1 and "overwrite=True" in refused.stderr
    assert _json("variable", "set", "region", "plain text", "--overwrite")["value"] == "plain text"
    assert [v["name"] for v in _json("variable", "ls")] == ["region"]
    too_big = _run("variable", "set", "big", "x" * 6000)
    assert too_big.returncode == 1 and "over the limit of 5000" in too_big.stderr
    assert _json("variable", "unset", "region")["unset"] is True
    missing = _run("variable", "get", "region")
    assert missing.returncode == 1 and "no variable 'region'" in missing.stderr
