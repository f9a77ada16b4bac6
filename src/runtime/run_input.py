"""The input a pause waits for: `RunInput`, and the model a builtin type becomes.

Apart from `pausing.py` because it needs pydantic, which `import headwater` does not load:
`RunInput` is exported lazily (`runtime.__getattr__`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

#: Restates `api.pause_store.WRAPPED` (the runtime imports the api only lazily): the schema
#: key that tells the service a builtin type was wrapped, so a bare resume input is wrapped.
WRAPPED = "x-headwater-value"


class RunInput(BaseModel):
    """The base of a pause's typed input: a pydantic model whose unknown fields are refused,
    so a resume that names a field the flow does not know is rejected, not ignored."""

    model_config = ConfigDict(extra="forbid")


class _WrappedInput(RunInput):
    """The base of the one-field (`value`) models builtin types become."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={WRAPPED: True})


def input_model(wait_for_input: Any) -> tuple[type[BaseModel], bool]:
    """The model a pause's input validates into, and whether it wraps a builtin (`value`)."""
    if isinstance(wait_for_input, type) and issubclass(wait_for_input, BaseModel):
        return wait_for_input, False
    name = getattr(wait_for_input, "__name__", "Value")
    model: type[BaseModel] = create_model(
        f"{name.capitalize()}Input", __base__=_WrappedInput, value=(wait_for_input, ...),
    )
    return model, True
