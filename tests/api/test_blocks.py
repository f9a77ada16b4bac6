"""Blocks and variables through a real server on 127.0.0.1 (`block_service.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from headwater.api import StateServer
from headwater.api.block_client import BlockClient
from headwater.api.client import Target
from headwater.api.errors import BlockExists, BlockNotFound, InvalidVariable, Unauthenticated, VariableExists

from .conftest import TOKEN


@pytest.fixture
def blocks(server: StateServer) -> Iterator[BlockClient]:
    with BlockClient(Target.resolve(server.url, TOKEN, None), retry_for=2.0) as client:
        yield client


def test_a_block_document_round_trips_and_is_replaced_only_when_asked(blocks: BlockClient) -> None:
    blocks.register_type("slack-webhook", {"type": "object", "properties": {"url": {"secret": True}}}, "1")
    saved = blocks.save_block("slack-webhook", "alerts", {"url": {"$secret": "gAAAA..."}})
    assert blocks.read_block("slack-webhook", "alerts").data == {"url": {"$secret": "gAAAA..."}}
    with pytest.raises(BlockExists, match="overwrite=True"):
        blocks.save_block("slack-webhook", "alerts", {})
    again = blocks.save_block("slack-webhook", "alerts", {"url": {"$secret": "new"}}, overwrite=True)
    assert again.id == saved.id and again.data["url"]["$secret"] == "new"
    assert [b.name for b in blocks.list_blocks("slack-webhook")] == ["alerts"]
    assert [t.slug for t in blocks.list_types()] == ["slack-webhook"]
    blocks.delete_block("slack-webhook", "alerts")
    with pytest.raises(BlockNotFound, match="block ls"):
        blocks.read_block("slack-webhook", "alerts")


def test_variables_are_json_values_with_limits(blocks: BlockClient) -> None:
    blocks.set_variable("region", {"name": "eu", "zones": [1, 2]}, tags=["infra"])
    assert blocks.get_variable("region").value == {"name": "eu", "zones": [1, 2]}  # type: ignore[union-attr]
    with pytest.raises(VariableExists):
        blocks.set_variable("region", "x")
    assert blocks.set_variable("region", "x", overwrite=True).value == "x"
    with pytest.raises(InvalidVariable, match="over the limit of 5000"):
        blocks.set_variable("big", "y" * 6000)
    with pytest.raises(InvalidVariable, match="name 'Bad Name' is refused"):
        blocks.set_variable("Bad Name", 1)
    assert [v.name for v in blocks.list_variables()] == ["region"]
    assert blocks.unset_variable("region") and not blocks.unset_variable("region")
    assert blocks.get_variable("region") is None


def test_blocks_need_the_token_like_every_other_call(server: StateServer) -> None:
    with BlockClient(Target.resolve(server.url, "wrong-token", None), retry_for=1.0) as client:
        with pytest.raises(Unauthenticated):
            client.list_variables()
