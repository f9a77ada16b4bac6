"""`@task` and the `Task` object: how a call becomes a task run.

- `t(x)` runs the task now, in this thread, and returns its value (inside a flow or not).
- `t.submit(x)` returns a `TaskFuture` at once; the run starts when its upstreams finish.
- `t.map(xs)` submits one run per element and returns a `FutureList`.

The decorated function stays the user's: `Task` keeps its signature (`ParamSpec`), name and
docstring, and `task.fn` is the original function.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ..errors import MappingLengthMismatch, ParameterBindError
from .arguments import extract_upstream, unmapped
from .context import current_services, flow_run_var, task_run_var
from .engine import RunOutcome, TaskRunPayload, jittered, outcome_of, run_task_now, run_task_now_async
from .futures import FutureList, RunFuture, TaskFuture
from .logs import enable_log_prints
from .run_metadata import naming
from .run_tags import with_tags_in_effect
from .runs import TaskRun, new_task_run_id, set_state
from .states import Pending, State
from .tracebacks import fold_headwater_frames
from .submission import current_scheduler

if TYPE_CHECKING:
    from .caching import TaskCache

P = ParamSpec("P")
R = TypeVar("R")

Hook = Callable[..., Any]
RetryDelay = float | int | Sequence[float] | Callable[[int], Sequence[float]]

_outside_flow_counts: dict[str, itertools.count[int]] = {}
_tuple_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """For `retry_delay_seconds`: delays of factor, 2*factor, 4*factor, ... per retry."""

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**attempt for attempt in range(retries)]

    return delays


class Task(Generic[P, R]):
    """A function that runs as observed, retryable task runs. Made by `@task`.

    Retries: `retries` attempts more after the first, waiting `retry_delay_seconds` (a number,
    a list per retry, or a callable such as `exponential_backoff(2)`) stretched by up to
    `retry_jitter_factor`, when `retry_condition_fn(task, task_run, state)` agrees (it judges
    the task's own exceptions).

    An attempt whose worker died under it (a killed process, a lost node: `WorkerLost`) is
    retried too, on a live worker, with the same delays. By default it counts against
    `retries`, like a failure. `crash_retries=n` gives such losses a budget of their own: up to
    n lost attempts are retried, and `retries` counts only the task's own failures. When no
    retry is left a lost attempt ends the run CRASHED, or FAILED if every one of two or more
    attempts died with its worker (the task itself is then the likely killer).

    Caching (`caching.py`): with `cache_policy` (from `headwater.cache`: `INPUTS`,
    `TASK_SOURCE + INPUTS - "client"`, ...) or `cache_key_fn(context, parameters)`, a run
    whose key is in the cache ends COMPLETED("Cached") with the stored value, without calling
    the function. `cache_expiration` (a timedelta) bounds an entry's life, `refresh_cache=True`
    computes and stores over it, `result_storage` (an fsspec URL or path) keeps values there
    instead of in the state service's store, `cache_result_in_memory=False` leaves a value in
    the cache rather than in the run's state until asked for. `persist_result=True` alone
    caches by `DEFAULT` (code, inputs and flow run); `persist_result=False` turns caching off."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        retries: int = 0,
        retry_delay_seconds: RetryDelay = 0,
        retry_jitter_factor: float | None = None,
        retry_condition_fn: Callable[..., bool] | None = None,
        crash_retries: int | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        task_run_name: str | Callable[[], str] | None = None,
        on_completion: Sequence[Hook] | None = None,
        on_failure: Sequence[Hook] | None = None,
        on_running: Sequence[Hook] | None = None,
        runner_options: Mapping[str, Any] | None = None,
        cache_policy: Any = None,
        cache_key_fn: Callable[..., str | None] | None = None,
        cache_expiration: timedelta | None = None,
        refresh_cache: bool | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        cache_result_in_memory: bool = True,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {fn!r}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        if crash_retries is not None and crash_retries < 0:
            raise ValueError(f"crash_retries must be 0 or more (or None), got {crash_retries}")
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        if retry_jitter_factor is not None and retry_jitter_factor < 0:
            raise ValueError(f"retry_jitter_factor must be 0 or more, got {retry_jitter_factor}")
        self.fn = fn
        self.name: str = str(name or getattr(fn, "__name__", type(fn).__name__))
        self.description = description or inspect.getdoc(fn)
        self.tags = tuple(tags or ())
        self.version = version
        self.retries = retries
        self.retry_delay_seconds = retry_delay_seconds
        self.retry_jitter_factor = retry_jitter_factor
        self.retry_condition_fn = retry_condition_fn
        self.crash_retries = crash_retries
        self.timeout_seconds = timeout_seconds
        self.log_prints = log_prints
        if log_prints:  # a task's own log_prints works whatever its flow says (and on workers)
            enable_log_prints()
        self.task_run_name = task_run_name
        self.on_completion = list(on_completion or ())
        self.on_failure = list(on_failure or ())
        self.on_running = list(on_running or ())
        #: per-call settings for the runner: Ray options (`num_cpus`, `resources`, ...) on
        #: `RayTaskRunner`, annotations (`resources`, `priority`, `workers`) on
        #: `DaskTaskRunner`; runners without per-call settings ignore them
        self.runner_options: Mapping[str, Any] = dict(runner_options or {})
        #: how this task caches (`caching.py`), or None: most tasks do not, and pay nothing
        self.cache: TaskCache | None = None
        if (cache_policy is not None or cache_key_fn is not None or persist_result is not None
                or refresh_cache or result_storage is not None):  # fmt: skip
            from .caching import TaskCache

            self.cache = TaskCache.from_options(
                self.name, cache_policy=cache_policy, cache_key_fn=cache_key_fn,
                cache_expiration=cache_expiration, refresh_cache=refresh_cache,
                persist_result=persist_result, result_storage=result_storage,
                cache_result_in_memory=cache_result_in_memory,
            )  # fmt: skip
        self.is_async = inspect.iscoroutinefunction(fn)
        self._signature = inspect.signature(fn)
        params = self._signature.parameters.values()
        # Plain named parameters let a call be `fn(**parameters)`; others go through bind().
        self._plain = all(
            p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params
        )
        self._positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        self._required = frozenset(p.name for p in params if p.default is p.empty)
        self._options = {
            "name": name, "description": description, "tags": tags, "version": version,
            "retries": retries, "retry_delay_seconds": retry_delay_seconds,
            "retry_jitter_factor": retry_jitter_factor, "retry_condition_fn": retry_condition_fn,
            "crash_retries": crash_retries, "timeout_seconds": timeout_seconds, "log_prints": log_prints,
            "task_run_name": task_run_name, "on_completion": on_completion,
            "on_failure": on_failure, "on_running": on_running, "runner_options": runner_options,
            "cache_policy": cache_policy, "cache_key_fn": cache_key_fn, "cache_expiration": cache_expiration,
            "refresh_cache": refresh_cache, "persist_result": persist_result,
            "result_storage": result_storage, "cache_result_in_memory": cache_result_in_memory,
        }  # fmt: skip
        functools.update_wrapper(self, fn)

    def with_options(self, **overrides: Any) -> Task[P, R]:
        """A copy of this task with some options changed."""
        unknown = set(overrides) - set(self._options)
        if unknown:
            raise TypeError(f"unknown task options {sorted(unknown)}; known: {sorted(self._options)}")
        return Task(self.fn, **{**self._options, **overrides})

    def __repr__(self) -> str:
        return f"Task({self.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # A task travels to remote workers as its function and options, nothing derived.
        return (_task_from, (self.fn, self._options))

    # -- binding -----------------------------------------------------------------------

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments as a parameter-name -> value dict; `ParameterBindError` if they don't fit."""
        if self._plain and len(args) <= len(self._positional):
            parameters = dict(zip(self._positional, args))
            for key in kwargs:
                if key in parameters or key not in self._signature.parameters:
                    break
            else:
                parameters.update(kwargs)
                if self._required.issubset(parameters):
                    return parameters
        try:
            return dict(self._signature.bind(*args, **kwargs).arguments)
        except TypeError as exc:
            raise ParameterBindError(
                f"task {self.name!r} called with arguments that don't fit {self.name}{self._signature}: {exc}"
            ) from None

    def call_with(self, parameters: dict[str, Any]) -> Any:
        """Call the function with a parameter dict made by `bind`."""
        if self._plain:
            return self.fn(**parameters)  # type: ignore[call-arg]
        bound = inspect.BoundArguments(self._signature, parameters)  # type: ignore[arg-type,unused-ignore]
        return self.fn(*bound.args, **bound.kwargs)

    def failures_counted(self, run: TaskRun) -> int:
        """How many of `run`'s attempts so far count against `retries`: all of them, or with
        `crash_retries` set, those that did not die with their worker."""
        used = run.run_count - 1
        return used if self.crash_retries is None else used - run.lost_attempts

    def retry_delay_for(self, retries_used: int) -> float:
        """Seconds to wait before retry number `retries_used + 1`."""
        option = self.retry_delay_seconds
        if callable(option):
            option = option(self.retries)
        if isinstance(option, (int, float)):
            delay = float(option)
        else:
            delays = list(option)
            delay = float(delays[min(retries_used, len(delays) - 1)]) if delays else 0.0
        return jittered(delay, self.retry_jitter_factor)

    # -- making runs -------------------------------------------------------------------

    def _run_name(self, parameters: dict[str, Any]) -> str:
        template = self.task_run_name
        if template is not None:
            if not callable(template):
                return template.format(**parameters)
            with naming("task", parameters):  # the callable may read `task_run.parameters`
                return template()
        flow_ctx = flow_run_var.get()
        counts = flow_ctx.task_run_counts if flow_ctx is not None else _outside_flow_counts
        counter = counts.get(self.name) or counts.setdefault(self.name, itertools.count())
        return f"{self.name}-{next(counter)}"

    def _prepare(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Iterable[Any] | None
    ) -> tuple[TaskRunPayload, list[RunFuture[Any]]]:
        parameters = self.bind(args, kwargs)
        extracted = extract_upstream(parameters, tuple(wait_for) if wait_for else ())
        flow_ctx = flow_run_var.get()
        # A task run outside any flow is recorded too; inside a task it records where that does.
        services = flow_ctx.services if flow_ctx is not None else current_services()
        run = TaskRun(
            new_task_run_id(),
            self._run_name(parameters),
            self.name,
            flow_ctx.flow_run.id if flow_ctx is not None else _enclosing_flow_run_id(),
            with_tags_in_effect(self.tags),
        )
        if extracted.lineage:
            futures = extracted.futures
            run.upstream = {
                name: tuple([futures[i].run_id for i in indexes])
                for name, indexes in extracted.lineage.items()
            }
        set_state(run, Pending(), services.reporter())
        payload: TaskRunPayload = _tuple_new(
            TaskRunPayload,
            (self, run, extracted.parameters, extracted.required, self._log_prints(flow_ctx), services,
             None if self.cache is None or flow_ctx is None else flow_ctx.flow_run.parameters),
        )  # fmt: skip
        return payload, extracted.futures

    def _log_prints(self, flow_ctx: Any) -> bool:
        if self.log_prints is not None:
            return self.log_prints
        outer = task_run_var.get() or flow_ctx
        return bool(outer is not None and outer.log_prints)

    # -- the three ways to run ---------------------------------------------------------

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def __call__(self, *args: Any, return_state: bool, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, return_state: bool = False, **kwargs: Any) -> Any:  # type: ignore[misc]
        """Run now, in this thread; return the value (or the final state)."""
        try:
            payload, upstream = self._prepare(args, kwargs, None)
            outcomes = tuple(_final_outcome(u) for u in upstream)
            if self.is_async:
                return _finish_async(payload, outcomes, return_state)
            state = run_task_now(payload, outcomes)
            return state if return_state else state.result()
        except BaseException as exc:
            fold_headwater_frames(exc)  # the caller's traceback shows its own frames
            raise

    def submit(
        self,
        *args: Any,
        wait_for: Iterable[Any] | None = None,
        return_state: bool = False,
        **kwargs: Any,
    ) -> TaskFuture[R]:
        """Start a run and return its future at once. Futures in the arguments (or in
        `wait_for`) are upstreams: the run starts when they finish."""
        payload, upstream = self._prepare(args, kwargs, wait_for)
        future: TaskFuture[R] = TaskFuture(payload.task_run)
        current_scheduler().submit(future, payload, upstream)
        if return_state:
            future.wait()
            return future.state  # type: ignore[return-value]
        return future

    def map(
        self,
        *args: Any,
        wait_for: Iterable[Any] | None = None,
        return_state: bool = False,
        **kwargs: Any,
    ) -> FutureList[R]:
        """One run per element of the iterable arguments (`unmapped(x)` is passed whole)."""
        calls = _mapped_calls(self.name, args, kwargs)
        wait_for = list(wait_for) if wait_for else None
        futures: FutureList[R] = FutureList(
            self.submit(*call_args, wait_for=wait_for, **call_kwargs)
            for call_args, call_kwargs in calls
        )
        if return_state:
            futures.wait()
            return [f.state for f in futures]  # type: ignore[return-value]
        return futures


def _task_from(fn: Callable[..., Any], options: dict[str, Any]) -> Task[..., Any]:
    return Task(fn, **options)


def _enclosing_flow_run_id() -> Any:
    task_ctx = task_run_var.get()
    return task_ctx.task_run.flow_run_id if task_ctx is not None else None


def _final_outcome(upstream: RunFuture[Any]) -> RunOutcome:
    upstream.wait()
    outcome = getattr(upstream, "outcome", None)
    return outcome if outcome is not None else outcome_of(upstream.state)


async def _finish_async(payload: TaskRunPayload, outcomes: tuple[RunOutcome, ...], return_state: bool) -> Any:
    try:
        state = await run_task_now_async(payload, outcomes)
        return state if return_state else state.result()
    except BaseException as exc:
        fold_headwater_frames(exc)
        raise


def _mapped_calls(
    task_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Split `.map()` arguments into one (args, kwargs) pair per run."""
    named = {f"argument {i + 1}": value for i, value in enumerate(args)}
    named.update({f"{key!r}": value for key, value in kwargs.items()})
    iterables: dict[str, list[Any]] = {}
    for label, value in named.items():
        if isinstance(value, unmapped) or isinstance(value, (str, bytes, dict)):
            continue
        if isinstance(value, RunFuture):
            value = value.result()  # map over what an upstream produced
        try:
            iterables[label] = list(value)
        except TypeError:
            continue  # a scalar: passed whole to every run
    if not iterables:
        raise MappingLengthMismatch(
            f"{task_name}.map() needs at least one iterable argument; wrap scalars you want "
            "passed whole in unmapped()"
        )
    lengths = {label: len(items) for label, items in iterables.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{label} has {n}" for label, n in lengths.items())
        raise MappingLengthMismatch(
            f"{task_name}.map() got iterables of different lengths: {described}; "
            "give them the same length or wrap the ones to pass whole in unmapped()"
        )
    count = next(iter(lengths.values()))

    def pick(label: str, value: Any, i: int) -> Any:
        if label in iterables:
            return iterables[label][i]
        return value.value if isinstance(value, unmapped) else value

    labels = list(named)
    positional = labels[: len(args)]
    keyword = list(zip(kwargs, labels[len(args) :]))
    return [
        (
            tuple(pick(label, named[label], i) for label in positional),
            {key: pick(label, named[label], i) for key, label in keyword},
        )
        for i in range(count)
    ]


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = ...,
    description: str | None = ...,
    tags: Iterable[str] | None = ...,
    version: str | None = ...,
    retries: int = ...,
    retry_delay_seconds: RetryDelay = ...,
    retry_jitter_factor: float | None = ...,
    retry_condition_fn: Callable[..., bool] | None = ...,
    crash_retries: int | None = ...,
    timeout_seconds: float | None = ...,
    log_prints: bool | None = ...,
    task_run_name: str | Callable[[], str] | None = ...,
    on_completion: Sequence[Hook] | None = ...,
    on_failure: Sequence[Hook] | None = ...,
    on_running: Sequence[Hook] | None = ...,
    runner_options: Mapping[str, Any] | None = ...,
    cache_policy: Any = ...,
    cache_key_fn: Callable[..., str | None] | None = ...,
    cache_expiration: timedelta | None = ...,
    refresh_cache: bool | None = ...,
    persist_result: bool | None = ...,
    result_storage: Any = ...,
    cache_result_in_memory: bool = ...,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(fn: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Make a function a task; use bare (`@task`) or with options (`@task(retries=3)`)."""
    if fn is None:
        return lambda f: Task(f, **options)
    return Task(fn, **options)
