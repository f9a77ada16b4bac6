"""Parameter schemas of real flows, in Prefect's shape, and validation against them."""

from __future__ import annotations

import json
import threading
from typing import Any

import pydantic
import pytest

from headwater import flow
from headwater.deploy.parameters import parameter_schema, validate_parameters
from headwater.errors import ParameterValidationError


class Window(pydantic.BaseModel):
    days: int
    label: str = "recent"


@flow
def report(n: int, window: Window, note, ratio: float = 0.5, tags: list[str] | None = None) -> None:  # type: ignore[no-untyped-def]
    pass


@flow
def anything_goes(a, *args: int, b="x", lock=threading.Lock(), **kwargs: int) -> None:  # type: ignore[no-untyped-def]
    pass


def test_annotated_parameters_get_their_pydantic_schema_in_prefects_shape() -> None:
    schema = parameter_schema(report)
    assert schema["type"] == "object" and schema["title"] == "Parameters"
    assert schema["required"] == ["n", "window", "note"]
    properties = schema["properties"]
    assert list(properties) == ["n", "window", "note", "ratio", "tags"]
    assert properties["n"] == {"title": "n", "position": 0, "type": "integer"}
    assert properties["window"] == {"title": "window", "position": 1, "$ref": "#/$defs/Window"}
    assert properties["ratio"] == {"title": "ratio", "position": 3, "type": "number", "default": 0.5}
    assert properties["tags"]["default"] is None
    assert {"type": "array", "items": {"type": "string"}} in properties["tags"]["anyOf"]
    assert schema["$defs"]["Window"]["required"] == ["days"]
    assert schema["additionalProperties"] is False
    json.dumps(schema)  # plain JSON throughout


def test_string_annotations_resolve_in_the_flows_module() -> None:
    """This module has `from __future__ import annotations`: every annotation is a string."""
    assert isinstance(report.fn.__annotations__["n"], str)
    assert parameter_schema(report)["properties"]["n"]["type"] == "integer"


def test_unannotated_parameters_accept_anything_and_show_json_able_defaults() -> None:
    schema = parameter_schema(anything_goes)
    assert schema["properties"] == {
        "a": {"title": "a", "position": 0},
        "b": {"title": "b", "position": 1, "default": "x"},
        "lock": {"title": "lock", "position": 2},  # a lock is no JSON: its default is left out
    }
    assert schema["required"] == ["a"]
    assert schema["additionalProperties"] is True  # **kwargs takes any name


def test_types_with_no_json_schema_and_local_classes_accept_anything() -> None:
    class Local:
        pass

    @flow
    def odd(guard: threading.Event, thing: Local, n: int = 1) -> None:
        pass

    properties = parameter_schema(odd)["properties"]
    assert properties["guard"] == {"title": "guard", "position": 0}
    assert properties["thing"] == {"title": "thing", "position": 1}
    assert properties["n"]["type"] == "integer"


def test_parameters_named_as_pydantic_reserves_keep_their_names() -> None:
    @flow
    def reserved(json: str, model_config: int = 0, _hidden: bool = False) -> None:
        pass

    schema = parameter_schema(reserved)
    assert list(schema["properties"]) == ["json", "model_config", "_hidden"]
    assert schema["required"] == ["json"]


def test_a_flow_without_parameters_has_an_empty_schema() -> None:
    @flow
    def nothing() -> None:
        pass

    schema = parameter_schema(nothing)
    assert (schema["properties"], schema["required"]) == ({}, [])
    assert validate_parameters(schema, {}) == {}


def test_valid_parameters_come_back_unchanged() -> None:
    given = {"n": 3, "window": {"days": 7}, "note": None, "tags": ["a"]}
    assert validate_parameters(parameter_schema(report), given, flow_name="report") == given


def test_every_problem_is_named_by_its_parameter() -> None:
    given = {"n": "x", "window": {"days": "many"}, "ratio": "half", "foo": 1, "bar": 2}
    with pytest.raises(ParameterValidationError) as caught:
        validate_parameters(parameter_schema(report), given, flow_name="report")
    assert isinstance(caught.value, ValueError)
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid parameters for flow 'report':"
    assert [line.strip() for line in lines[1:]] == [
        "parameter 'foo' is not a parameter of flow 'report' (its parameters: n, window, note, ratio, tags)",
        "parameter 'bar' is not a parameter of flow 'report' (its parameters: n, window, note, ratio, tags)",
        "parameter 'note' is required by flow 'report' and was not given",
        "parameter 'n': 'x' is not of type 'integer'",
        "parameter 'ratio': 'half' is not of type 'number'",
        "parameter 'window.days': 'many' is not of type 'integer'",
    ]


def test_without_a_flow_name_messages_say_the_flow() -> None:
    schema = parameter_schema(report)
    with pytest.raises(ValueError, match="'foo' is not a parameter of this flow"):
        validate_parameters(schema, {"n": 1, "window": {"days": 1}, "note": 1, "foo": 1})


def test_flows_taking_kwargs_accept_unknown_names() -> None:
    schema = parameter_schema(anything_goes)
    assert validate_parameters(schema, {"a": 1, "extra": object()}) is not None


def test_a_schema_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="not a parameter schema"):
        validate_parameters({"type": "no-such-type"}, {})


def test_schemas_survive_a_trip_through_json_and_still_validate() -> None:
    stored: dict[str, Any] = json.loads(json.dumps(parameter_schema(report)))
    with pytest.raises(ValueError, match="parameter 'window': 'days' is a required property"):
        validate_parameters(stored, {"n": 1, "window": {}, "note": 1})
