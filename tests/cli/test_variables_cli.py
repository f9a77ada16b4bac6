"""`headwater variable ...`: the real command in subprocesses, on this test's home."""

from __future__ import annotations

from .helpers import cli, cli_json


def test_variables_set_get_list_and_unset() -> None:
    assert cli_json("variable", "set", "region", '{"name": "eu"}', "--tag", "infra")["value"] == {"name": "eu"}
    assert cli_json("variable", "get", "region")["value"] == {"name": "eu"}
    assert cli("variable", "get", "region").stdout.strip() == '{"name": "eu"}'
    refused = cli("variable", "set", "region", "x")
    assert refused.returncode == 1 and "overwrite=True" in refused.stderr
    assert cli_json("variable", "set", "region", "plain text", "--overwrite")["value"] == "plain text"
    assert [v["name"] for v in cli_json("variable", "ls")] == ["region"]
    too_big = cli("variable", "set", "big", "x" * 6000)
    assert too_big.returncode == 1 and "over the limit of 5000" in too_big.stderr
    assert cli_json("variable", "unset", "region")["unset"] is True
    missing = cli("variable", "get", "region")
    assert missing.returncode == 1 and "no variable 'region'" in missing.stderr
