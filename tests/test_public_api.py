"""The public surface is deliberate: this pins it, as trio's test_exports does."""

from __future__ import annotations

import inspect
import subprocess
import sys

import headwater
import headwater.runners

EXPECTED_TOP_LEVEL = {
    "flow", "task", "unmapped", "allow_failure", "wait", "as_completed", "get_run_logger",
    "concurrency", "rate_limit", "SlotUnavailable", "cancel_flow_run",
    "pause_flow_run", "apause_flow_run", "resume_flow_run", "reject_flow_run", "RunInput", "PausedRunTimeout",
    "PauseRejected", "InvalidRunInput",
    "get_run_context", "exponential_backoff", "tags", "serve", "run_deployment",
    "Flow", "Task", "TaskFuture", "FlowFuture", "FutureList", "TaskRun", "FlowRun",
    "State", "StateType", "Scheduled", "Pending", "Running", "Completed", "Cached", "Failed",
    "Crashed", "Cancelled", "Paused", "Retrying", "AwaitingRetry", "TimedOut", "NotReady",
    "HeadwaterError", "FailedRun", "InvalidTransition", "UpstreamFailed", "UnfinishedRun",
    "ParameterBindError", "ParameterValidationError", "MappingLengthMismatch", "RunTimedOut",
    "CancelledRun", "CrashedRun", "MissingContext", "SlotTimeout", "BrokenRunner",
    "RunnerUnavailable", "ShippingError", "RecordingError", "WorkerLost", "UpstreamLost",
}  # fmt: skip


def test_top_level_exports_exactly_the_public_surface() -> None:
    assert set(headwater.__all__) == EXPECTED_TOP_LEVEL
    for name in EXPECTED_TOP_LEVEL:
        assert getattr(headwater, name) is not None


def test_runners_exports() -> None:
    assert set(headwater.runners.__all__) == {
        "ConcurrentTaskRunner", "ProcessPoolTaskRunner", "RunnerFuture", "SequentialTaskRunner", "TaskCall",
        "TaskRunner", "ThreadPoolTaskRunner", "get_runner",
    }  # fmt: skip


# The Prefect-path aliases (issue #13): each module's surface, and where each name comes from.
# An alias re-exports; it never defines: every name must be the very object of its source.
EXPECTED_ALIASES: dict[str, dict[str, str]] = {
    "headwater.futures": dict.fromkeys(["FlowFuture", "FutureList", "TaskFuture", "as_completed", "wait"], "headwater"),
    "headwater.states": dict.fromkeys([
        "AwaitingRetry", "Cached", "Cancelled", "Completed", "Crashed", "Failed", "NotReady",
        "Paused", "Pending", "Retrying", "Running", "Scheduled", "State", "StateType", "TimedOut",
    ], "headwater"),
    "headwater.task_runners": dict.fromkeys([
        "ConcurrentTaskRunner", "ProcessPoolTaskRunner", "SequentialTaskRunner", "TaskRunner",
        "ThreadPoolTaskRunner",
    ], "headwater.runners"),
    "headwater.context": dict.fromkeys(["get_run_context", "tags"], "headwater"),
    "headwater.logging": {"get_run_logger": "headwater"},
    "headwater.tasks": {
        "Task": "headwater", "exponential_backoff": "headwater", "task": "headwater",
        "task_input_hash": "headwater.cache",
    },
}  # fmt: skip


def test_prefect_path_aliases_re_export_exactly_their_surface() -> None:
    import importlib

    for alias, sources in EXPECTED_ALIASES.items():
        module = importlib.import_module(alias)
        assert set(module.__all__) == set(sources), alias
        for name, source in sources.items():
            assert getattr(module, name) is getattr(importlib.import_module(source), name), f"{alias}.{name}"


def test_importing_headwater_does_not_import_heavy_optional_modules() -> None:
    code = (
        "import sys, headwater; "
        "heavy = [m for m in ('dask', 'distributed', 'ray', 'pydantic', 'grpc') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _error_classes(module: object) -> list[type[BaseException]]:
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseException)
        and obj.__module__ == getattr(module, "__name__")
    ]


def test_every_error_is_a_headwater_error_and_drawn_in_its_module_tree() -> None:
    import headwater.api
    import headwater.api.errors
    import headwater.errors

    for module in (headwater.errors, headwater.api.errors):
        classes = _error_classes(module)
        assert classes
        for cls in classes:
            # CancelInterrupt alone is a BaseException by design: user code's `except
            # Exception` must not swallow a cancel. It is drawn beside the tree.
            if cls is not headwater.errors.CancelInterrupt:
                assert issubclass(cls, headwater.HeadwaterError), cls
            assert f" {cls.__name__}" in (module.__doc__ or ""), f"{cls.__name__} not in the tree"
    assert headwater.api.RecordingError is headwater.RecordingError
    assert headwater.api.FlushTimeout is headwater.errors.FlushTimeout


def test_recording_error_names_the_unrecorded_runs() -> None:
    from uuid import uuid4

    ids = [uuid4() for _ in range(3)]
    err = headwater.RecordingError("records were not committed", ids)
    assert err.run_ids == frozenset(ids)
    assert all(str(i) in str(err) for i in ids)
    assert headwater.RecordingError("nothing").run_ids == frozenset()


def test_the_api_exports_the_remote_cache() -> None:
    import headwater.api
    from headwater.cache.store import LocalStore

    assert {"RemoteStore", "open_cache_store"} <= set(headwater.api.__all__)
    # The task engine is written once against either store: the same methods, the same names.
    methods = {name for name in vars(LocalStore) if not name.startswith("_")}
    for name in methods:
        theirs = getattr(headwater.api.RemoteStore, name, None)
        assert theirs is not None, f"RemoteStore.{name} is missing"
        assert inspect.signature(theirs) == inspect.signature(getattr(LocalStore, name)), name
    assert isinstance(headwater.api.RemoteStore.store_id, property)


def test_blocks_exports() -> None:
    import headwater.blocks

    assert set(headwater.blocks.__all__) == {
        "Block", "Secret", "JSON", "LocalFileSystem", "RemoteFileSystem", "SlackWebhook", "EmailServerCredentials",
        "SecretDict", "SecretJSON", "Variable", "Problem", "check_documents",
    }  # fmt: skip
    for name in headwater.blocks.__all__:
        assert getattr(headwater.blocks, name) is not None
