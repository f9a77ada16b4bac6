"""`@flow` and the `Flow` object: a function whose call is an observed flow run.

Calling a flow runs it in this thread and returns its value (an `async def` flow returns a
coroutine to await). Called inside another flow or a task it becomes a child run.
`flow.submit(...)` starts a flow run on its own thread and returns a `FlowFuture`, so
subflows can run concurrently. The lifecycle itself lives in `flow_engine.py`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ..errors import ParameterBindError, ParameterValidationError
from ..runners import ConcurrentTaskRunner
from ..runners.base import TaskRunner
from .context import flow_run_var
from .engine import jittered
from .flow_engine import FlowRunEngine, run_flow, run_flow_async
from .futures import FlowFuture
from .names import generate_run_name
from .portal import run_async
from .run_metadata import naming
from .tracebacks import fold_headwater_frames
from .states import Crashed

P = ParamSpec("P")
R = TypeVar("R")

Hook = Callable[..., Any]


class Flow(Generic[P, R]):
    """A function whose every call is a recorded flow run. Made by `@flow`."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        task_runner: TaskRunner | None = None,
        retries: int = 0,
        retry_delay_seconds: float | Sequence[float] = 0,
        timeout_seconds: float | None = None,
        validate_parameters: bool = True,
        log_prints: bool | None = None,
        flow_run_name: str | Callable[[], str] | None = None,
        on_completion: Sequence[Hook] | None = None,
        on_failure: Sequence[Hook] | None = None,
        on_crashed: Sequence[Hook] | None = None,
        on_cancellation: Sequence[Hook] | None = None,
        on_running: Sequence[Hook] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@flow needs a function, got {fn!r}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        if task_runner is not None and not isinstance(task_runner, TaskRunner):
            raise TypeError(
                f"task_runner must be a TaskRunner instance such as ConcurrentTaskRunner(), "
                f"got {task_runner!r}"
            )
        self.fn = fn
        self.name: str = str(name or getattr(fn, "__name__", type(fn).__name__))
        self.description = description or inspect.getdoc(fn)
        self.version = version
        self.task_runner: TaskRunner = task_runner or ConcurrentTaskRunner()
        self.retries = retries
        self.retry_delay_seconds = retry_delay_seconds
        self.timeout_seconds = timeout_seconds
        self.validate_parameters = validate_parameters
        self.log_prints = log_prints
        self.flow_run_name = flow_run_name
        self.on_completion = list(on_completion or ())
        self.on_failure = list(on_failure or ())
        self.on_crashed = list(on_crashed or ())
        self.on_cancellation = list(on_cancellation or ())
        self.on_running = list(on_running or ())
        self.is_async = inspect.iscoroutinefunction(fn)
        self._signature = inspect.signature(fn)
        self._validator: Any = None
        self._options = {
            "name": name, "description": description, "version": version,
            "task_runner": task_runner, "retries": retries,
            "retry_delay_seconds": retry_delay_seconds, "timeout_seconds": timeout_seconds,
            "validate_parameters": validate_parameters, "log_prints": log_prints,
            "flow_run_name": flow_run_name, "on_completion": on_completion,
            "on_failure": on_failure, "on_crashed": on_crashed,
            "on_cancellation": on_cancellation, "on_running": on_running,
        }  # fmt: skip
        functools.update_wrapper(self, fn)

    def with_options(self, **overrides: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed."""
        unknown = set(overrides) - set(self._options)
        if unknown:
            raise TypeError(f"unknown flow options {sorted(unknown)}; known: {sorted(self._options)}")
        return Flow(self.fn, **{**self._options, **overrides})

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"

    # -- deployments: entry points into the coordination plane (`headwater.deploy`) -------

    def to_deployment(self, name: str, **options: Any) -> Any:
        """A deployment of this flow named `name` (parameters, tags, description, version,
        work_pool_name, concurrency_limit, collision_strategy, paused), to `serve` or `deploy`."""
        from ..deploy.deployments import to_deployment

        return to_deployment(self, name, **options)

    def serve(self, name: str, *, limit: int | None = None, **options: Any) -> None:
        """Register a deployment of this flow and run its runs in this process until
        interrupted, each in a subprocess (`headwater.serve` for several)."""
        from ..deploy.serve import serve_flow

        serve_flow(self, name, limit=limit, **options)

    def deploy(self, name: str, *, work_pool_name: str, **options: Any) -> Any:
        """Register a deployment of this flow for the workers of `work_pool_name`."""
        from ..deploy.deployments import deploy, to_deployment

        return deploy(to_deployment(self, name, **options), work_pool_name=work_pool_name)[0]

    @classmethod
    def from_source(cls, source: Any, entrypoint: str) -> Flow[..., Any]:
        """The flow at `entrypoint` (`file.py:function` or `package.module:function`) in
        `source`: a directory, or a git repository URL (fetched), remembered for `deploy`."""
        from ..deploy.deployments import flow_from_source

        return flow_from_source(source, entrypoint)

    # -- parameters --------------------------------------------------------------------

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(self._signature.bind(*args, **kwargs).arguments)
        except TypeError as exc:
            raise ParameterBindError(
                f"flow {self.name!r} called with arguments that don't fit {self.name}{self._signature}: {exc}"
            ) from None

    def validate(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Validate and coerce annotated parameters with pydantic (when enabled)."""
        if not self.validate_parameters:
            return parameters
        validator = self._validator
        if validator is None:
            validator = self._validator = _ParameterValidator.for_signature(
                self.name, self._signature, getattr(self.fn, "__globals__", {})
            )
        validated: dict[str, Any] = validator.validate(parameters)
        return validated

    def call_with(self, parameters: dict[str, Any]) -> Any:
        bound = inspect.BoundArguments(self._signature, parameters)  # type: ignore[arg-type,unused-ignore]
        return self.fn(*bound.args, **bound.kwargs)

    def run_name(self, parameters: dict[str, Any]) -> str:
        template = self.flow_run_name
        if template is None:
            return generate_run_name()
        if not callable(template):
            return template.format(**parameters)
        with naming("flow", parameters):  # the callable may read `flow_run.parameters`
            return template()

    def retry_delay_for(self, retries_used: int) -> float:
        option = self.retry_delay_seconds
        if isinstance(option, (int, float)):
            return float(option)
        delays = list(option)
        return jittered(float(delays[min(retries_used, len(delays) - 1)]), None) if delays else 0.0

    # -- running -------------------------------------------------------------------------

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def __call__(self, *args: Any, return_state: bool, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, return_state: bool = False, **kwargs: Any) -> Any:  # type: ignore[misc]
        """Run the flow now; return its value (raise its failure), or its final state."""
        try:
            engine = FlowRunEngine(self, args, kwargs)
            if self.is_async:
                return _await_flow(engine, return_state)
            state = run_flow(engine)
            return state if return_state else state.result()
        except BaseException as exc:
            fold_headwater_frames(exc)  # the caller's traceback shows its own frames
            raise

    def submit(self, *args: Any, **kwargs: Any) -> FlowFuture[R]:
        """Start a flow run on its own thread and return its future at once."""
        engine = FlowRunEngine(self, args, kwargs)
        future: FlowFuture[R] = FlowFuture(engine.run)
        parent = flow_run_var.get()
        if parent is not None:
            parent.scheduler.track(future)
        context = contextvars.copy_context()

        def body() -> None:
            try:
                state = context.run(_run_to_state, engine)
            except BaseException as exc:  # recorded on the run by the engine; surfaced here
                state = engine.run.state
                if state is None or not state.is_final():
                    state = Crashed(exc)
            future._set_final(state)

        threading.Thread(target=body, name=f"headwater-flow-{engine.run.name}", daemon=True).start()
        return future


def _run_to_state(engine: FlowRunEngine) -> Any:
    if engine.flow.is_async:
        return run_async(run_flow_async, engine)
    return run_flow(engine)


async def _await_flow(engine: FlowRunEngine, return_state: bool) -> Any:
    try:
        state = await run_flow_async(engine)
        return state if return_state else state.result()
    except BaseException as exc:
        fold_headwater_frames(exc)
        raise


class _ParameterValidator:
    """A pydantic model of a flow's annotated parameters, built on first use."""

    def __init__(self, flow_name: str, model: Any, names: frozenset[str]) -> None:
        self._flow_name = flow_name
        self._model = model
        self._names = names

    @classmethod
    def for_signature(
        cls, flow_name: str, signature: inspect.Signature, namespace: dict[str, Any]
    ) -> _ParameterValidator:
        fields: dict[str, Any] = {}
        for param in resolved_parameters(signature, namespace):
            if param.annotation is param.empty:
                continue  # unannotated, or names a type we cannot see: unvalidated, not guessed
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (param.annotation, default)
        if not fields:
            return cls(flow_name, None, frozenset())
        import pydantic  # only flows with annotated parameters pay for importing pydantic

        model = pydantic.create_model(
            f"{flow_name}_parameters",
            __config__=pydantic.ConfigDict(arbitrary_types_allowed=True),
            **fields,
        )
        return cls(flow_name, model, frozenset(fields))

    def validate(self, parameters: dict[str, Any]) -> dict[str, Any]:
        if self._model is None:
            return parameters
        import pydantic

        given = {name: value for name, value in parameters.items() if name in self._names}
        try:
            validated = self._model.model_validate(given)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc']))}: {err['msg']} (got {err.get('input')!r})"
                for err in exc.errors()
            )
            raise ParameterValidationError(
                f"flow {self._flow_name!r} parameters are invalid: {problems}"
            ) from None
        coerced = {name: getattr(validated, name) for name in given}
        return {**parameters, **coerced}


def resolved_parameters(signature: inspect.Signature, namespace: dict[str, Any]) -> list[inspect.Parameter]:
    """The parameters a caller names (`*args` and `**kwargs` left out), in order, each
    annotation resolved to a type: a string annotation (PEP 563) is evaluated in `namespace`,
    the flow's module globals. `Parameter.empty` when there is none or it names something not
    visible there (a class local to a function). Parameter validation and a deployment's
    parameter schema (`headwater.deploy.parameters`) both read parameters through this."""
    return [
        param.replace(annotation=_resolve_annotation(param.annotation, namespace))
        for param in signature.parameters.values()
        if param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    ]


def _resolve_annotation(annotation: Any, namespace: dict[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, dict(namespace))  # noqa: S307 - the user's own annotation
    except Exception:
        return inspect.Parameter.empty


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...


@overload
def flow(
    *,
    name: str | None = ...,
    description: str | None = ...,
    version: str | None = ...,
    task_runner: TaskRunner | None = ...,
    retries: int = ...,
    retry_delay_seconds: float | Sequence[float] = ...,
    timeout_seconds: float | None = ...,
    validate_parameters: bool = ...,
    log_prints: bool | None = ...,
    flow_run_name: str | Callable[[], str] | None = ...,
    on_completion: Sequence[Hook] | None = ...,
    on_failure: Sequence[Hook] | None = ...,
    on_crashed: Sequence[Hook] | None = ...,
    on_cancellation: Sequence[Hook] | None = ...,
    on_running: Sequence[Hook] | None = ...,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(fn: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Make a function a flow; use bare (`@flow`) or with options (`@flow(retries=2)`)."""
    if fn is None:
        return lambda f: Flow(f, **options)
    return Flow(fn, **options)

