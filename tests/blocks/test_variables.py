"""`Variable.set / get / unset` through this test's embedded state service."""

from __future__ import annotations

import pytest

from headwater.api.errors import InvalidVariable, VariableExists
from headwater.blocks import Variable


def test_set_get_unset_and_overwrite() -> None:
    assert Variable.get("batch_size") is None
    assert Variable.get("batch_size", default=100) == 100
    made = Variable.set("batch_size", 500, tags=["etl"])
    assert (made.name, made.value, made.tags) == ("batch_size", 500, ("etl",))
    assert Variable.get("batch_size") == 500
    with pytest.raises(VariableExists):
        Variable.set("batch_size", 1)
    assert Variable.set("batch_size", {"rows": [1, 2], "on": True}, overwrite=True).value == {"rows": [1, 2], "on": True}
    assert Variable.get("batch_size", default=100) == {"rows": [1, 2], "on": True}
    assert Variable.unset("batch_size") is True
    assert Variable.unset("batch_size") is False
    assert Variable.get("batch_size", default="gone") == "gone"


def test_limits_a_too_large_value_a_bad_name_and_a_value_that_is_not_json() -> None:
    with pytest.raises(InvalidVariable, match="5000"):
        Variable.set("big", "y" * 6000)
    Variable.set("just_fits", "y" * 4998)  # 5,000 characters as JSON text, quotes included
    assert len(Variable.get("just_fits")) == 4998
    with pytest.raises(InvalidVariable, match="Bad Name"):
        Variable.set("Bad Name", 1)
    with pytest.raises(InvalidVariable, match="must be JSON"):
        Variable.set("obj", object())
    with pytest.raises(InvalidVariable, match="must be JSON"):
        Variable.set("nan", float("nan"))
