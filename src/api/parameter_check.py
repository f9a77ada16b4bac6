"""A deployment's parameters checked against the JSON schema stored with it.

The service validates without the flow's code (a worker elsewhere has it), so it uses the
schema pydantic wrote when the deployment was made, with `jsonschema`, the reference
validator for those schemas (as a pause's input is checked, `pause_store.py`). Each problem
names its parameter, so `run_deployment(..., parameters={"n": "x"})` says which field is
wrong and why instead of failing later in a worker.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidParameters


def check_parameters(schema: dict[str, Any], parameters: dict[str, Any], flow_name: str, *, partial: bool = False) -> list[str]:
    """The problems of `parameters` against `schema` (empty when they fit). `partial`: a
    deployment's defaults, which need not give every required parameter."""
    if not schema:
        return []
    import jsonschema  # only the service checks, and only when a deployment is made or run

    properties = schema.get("properties") or {}
    problems = []
    if properties or schema.get("additionalProperties") is False:
        for name in parameters:
            if name not in properties:
                known = ", ".join(properties) or "none"
                problems.append(f"parameter {name!r} is not a parameter of flow {flow_name!r} (its parameters: {known})")
    checked = dict(schema)
    if partial:
        checked.pop("required", None)
    try:
        cls = jsonschema.validators.validator_for(checked, default=jsonschema.Draft202012Validator)
        cls.check_schema(checked)
    except jsonschema.SchemaError as exc:
        raise InvalidParameters(f"flow {flow_name!r}: the stored parameter schema is not a JSON schema: {exc.message}") from None
    for error in sorted(cls(checked).iter_errors(parameters), key=lambda e: list(e.absolute_path)):
        path = list(error.absolute_path)
        if path:
            field = ".".join(str(p) for p in path)
            problems.append(f"parameter {field!r}: {error.message}")
        elif error.validator == "required":
            problems.append(f"missing parameter: {error.message}")
        elif error.validator != "additionalProperties":  # named above, one by one
            problems.append(error.message)
    return problems
