"""Headwater: a fast, observable Python dataflow runtime.

    from headwater import flow, task

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow
    def pipeline(xs: list[int]) -> int:
        return sum(double.map(xs).result())

Runners live in `headwater.runners`, cache helpers in `headwater.cache`. The paths a Prefect
user types also work, as aliases of this one surface: `headwater.futures`, `.states`,
`.task_runners`, `.context`, `.logging` and `.tasks`; and `headwater.runtime.flow_run`,
`.task_run` and `.deployment` describe the run executing here, as `prefect.runtime` does.
Deployments: `my_flow.serve(name=...)` or `headwater.serve(...)`, `my_flow.deploy(...)` for
work pools' workers, and `run_deployment("flow/name")` from anywhere.
"""

__version__ = "0.1.0"

from .runtime import *  # noqa: F403 - the runtime's __all__ is the public surface
from .runtime import LAZY_EXPORTS as _lazy
from .runtime import __all__ as _runtime_all

#: The coordination plane's entry points, loaded on first use (they import gRPC).
_DEPLOY = ("serve", "run_deployment")

__all__ = [*_runtime_all, *_lazy, *_DEPLOY]


def __getattr__(name: str) -> object:
    """`RunInput` and the runtime's other lazy exports (pydantic), and `serve` and
    `run_deployment` (the deployments' package), loaded on first use."""
    if name in _lazy:
        from . import runtime

        return getattr(runtime, name)
    if name == "serve":
        from .deploy.serve import serve

        return serve
    if name == "run_deployment":
        from .deploy.run import run_deployment

        return run_deployment
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
