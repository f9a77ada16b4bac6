"""A flow's parameters as a JSON schema, and checking a deployment run's parameters with it.

The schema is made where the flow's code is (`parameter_schema`) and stored with the
deployment; the check (`validate_parameters`) needs only the schema, so whoever starts a run
(the CLI, the state service) can refuse bad parameters without importing the flow's code.

The schema has the shape Prefect gives it, which its UI and clients read:

    {"type": "object", "title": "Parameters",
     "properties": {"n": {"title": "n", "position": 0, "type": "integer", "default": 3}, ...},
     "required": [...], "$defs": {...}}

An annotated parameter gets its pydantic schema; an unannotated one (or one whose annotation
names a type not visible from the flow's module) accepts anything. A default is shown when
it is JSON-able. `*args` and `**kwargs` are left out; without `**kwargs` the schema also says
`"additionalProperties": false`, so an unknown name is refused.
"""

from __future__ import annotations

import inspect
from typing import Any

import jsonschema
import pydantic
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, JsonSchemaWarningKind
from pydantic_core import CoreSchema

from ..errors import ParameterValidationError
from ..runtime.flows import Flow, resolved_parameters


def parameter_schema(flow: Flow[Any, Any]) -> dict[str, Any]:
    """The JSON schema of `flow`'s parameters (see the module docstring for its shape)."""
    signature = inspect.signature(flow.fn)
    parameters = resolved_parameters(signature, getattr(flow.fn, "__globals__", {}))
    fields: dict[str, Any] = {}
    for position, param in enumerate(parameters):
        annotation = Any if param.annotation is param.empty else param.annotation
        default = ... if param.default is param.empty else param.default
        # Field names are placeholders and the parameter's name is the alias: a parameter
        # may be called what pydantic reserves (`_private`, `model_config`, `json`).
        fields[f"p{position}"] = (
            annotation,
            pydantic.Field(default, alias=param.name, title=param.name, json_schema_extra={"position": position}),
        )
    takes_any_name = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    model = pydantic.create_model(
        "Parameters",
        __config__=pydantic.ConfigDict(arbitrary_types_allowed=True, extra="allow" if takes_any_name else "forbid"),
        **fields,
    )
    schema: dict[str, Any] = model.model_json_schema(by_alias=True, schema_generator=_LenientSchema)
    schema.setdefault("properties", {})
    schema.setdefault("required", [])
    return schema


class _LenientSchema(GenerateJsonSchema):
    """Pydantic's schema generator, forgiving where a flow's signature is not JSON: a type with
    no JSON schema (a lock, a client object) accepts anything instead of failing the whole
    schema, and a default that is not JSON-able is left out without a warning."""

    def handle_invalid_for_json_schema(self, schema: CoreSchema | Any, error_info: str) -> JsonSchemaValue:
        return {}

    def emit_warning(self, kind: JsonSchemaWarningKind, detail: str) -> None:
        if kind != "non-serializable-default":
            super().emit_warning(kind, detail)


def validate_parameters(
    schema: dict[str, Any], parameters: dict[str, Any], *, flow_name: str | None = None
) -> dict[str, Any]:
    """`parameters`, unchanged, if they fit `schema` (made by `parameter_schema`); otherwise
    `ParameterValidationError` (a `ValueError`) with one line per problem, each naming the
    parameter: a value of the wrong type, an unknown name, a required one missing. `flow_name`
    only makes the messages name the flow."""
    try:
        validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"not a parameter schema: {exc.message}") from None
    problems = _unknown_and_missing(schema, parameters, flow_name)
    for error in sorted(validator_class(schema).iter_errors(parameters), key=lambda e: list(map(str, e.absolute_path))):
        if error.absolute_path:
            where = ".".join(str(part) for part in error.absolute_path)
            problems.append(f"parameter {where!r}: {error.message}")
        elif error.validator not in ("required", "additionalProperties"):  # named above, in full
            problems.append(error.message)
    if problems:
        flow = f"flow {flow_name!r}" if flow_name else "the flow"
        raise ParameterValidationError(f"invalid parameters for {flow}:\n  " + "\n  ".join(problems))
    return parameters


def _unknown_and_missing(schema: dict[str, Any], parameters: dict[str, Any], flow_name: str | None) -> list[str]:
    known = list(schema.get("properties", {}))
    flow = f"flow {flow_name!r}" if flow_name else "this flow"
    problems = []
    if schema.get("additionalProperties") is False:
        listed = ", ".join(known) or "none"
        problems += [
            f"parameter {name!r} is not a parameter of {flow} (its parameters: {listed})"
            for name in parameters
            if name not in known
        ]
    problems += [
        f"parameter {name!r} is required by {flow} and was not given"
        for name in schema.get("required", [])
        if name not in parameters
    ]
    return problems
