"""Cache policies: task identity, inputs with lineage, composition, and the uncacheable path."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from headwater.cache import (
    FLOW_PARAMETERS,
    INPUTS,
    NONE,
    RUN_ID,
    TASK_SOURCE,
    CachePolicy,
    KeyContext,
    UncacheableCall,
    UnhashableInput,
    task_input_hash,
)

SCALE = 2


def scaled(x: int) -> int:
    return x * SCALE


def ctx(fn: Callable[..., Any] = scaled, **kw: Any) -> KeyContext:
    return KeyContext(task_fn=fn, task_name=getattr(fn, "__name__", "t"), **kw)


def source_key(fn: Callable[..., Any]) -> str | None:
    return TASK_SOURCE.compute_key(ctx(fn), {})


def make_adder(n: Any) -> Callable[[int], int]:
    def add(x: int) -> int:
        return x + n

    return add


def test_same_source_different_closures_differ() -> None:
    assert source_key(make_adder(1)) == source_key(make_adder(1))
    assert source_key(make_adder(1)) != source_key(make_adder(2))


def test_default_arguments_count() -> None:
    fns = [lambda x, n=n: x + n for n in range(2)]
    assert source_key(fns[0]) != source_key(fns[1])


def test_a_changed_global_changes_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = source_key(scaled)
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "SCALE", 3)
    assert source_key(scaled) != before


def test_edited_code_changes_the_key() -> None:
    namespace: dict[str, Any] = {}
    exec("def f(x):\n    return x + 1\n", namespace)
    first = source_key(namespace["f"])
    exec("def f(x):\n    return x + 2\n", namespace)
    assert source_key(namespace["f"]) != first


def test_two_lambdas_on_one_line_differ_and_a_lambda_differs_from_a_def() -> None:
    f, g = (lambda x: x + 1), (lambda x: x * 2)
    assert source_key(f) != source_key(g)

    def plus_one(x: int) -> int:
        return x + 1

    assert source_key(f) != source_key(plus_one)


def test_the_key_does_not_move_as_the_function_warms_up() -> None:
    before = source_key(scaled)
    for i in range(5000):  # lets the interpreter specialise the bytecode
        scaled(i)
    assert source_key(scaled) == before


def test_an_unhashable_global_counts_by_type_but_an_unhashable_closure_is_uncacheable() -> None:
    lock = threading.Lock()

    def uses_lock() -> None:
        with lock:
            pass

    with pytest.warns(UncacheableCall, match=r"'lock'\]: a _thread.lock"):
        assert source_key(uses_lock) is None
    assert source_key(_uses_global_lock) is not None


_LOCK = threading.Lock()


def _uses_global_lock() -> None:
    with _LOCK:
        pass


def test_a_recursive_function_has_a_key() -> None:
    def fact(n: int) -> int:
        return 1 if n < 2 else n * fact(n - 1)

    assert source_key(fact) == source_key(fact)
    assert source_key(_even) is not None


def _even(n: int) -> bool:
    return n == 0 or _odd(n - 1)


def _odd(n: int) -> bool:
    return n != 0 and _even(n - 1)


def test_inputs_by_content_and_exclusion() -> None:
    assert INPUTS.compute_key(ctx(), {"a": 1, "b": 2}) == INPUTS.compute_key(ctx(), {"b": 2, "a": 1})
    assert INPUTS.compute_key(ctx(), {"a": 1}) != INPUTS.compute_key(ctx(), {"a": 2})
    without_b = INPUTS - "b"
    assert without_b.compute_key(ctx(), {"a": 1, "b": 2}) == without_b.compute_key(ctx(), {"a": 1, "b": 3})
    assert without_b.compute_key(ctx(), {"a": 1, "b": 2}) == INPUTS.compute_key(ctx(), {"a": 1})
    assert (INPUTS - "b" - "a").compute_key(ctx(), {"a": 1, "b": 2}) == INPUTS.compute_key(ctx(), {})


def test_an_upstream_key_stands_in_for_the_value() -> None:
    lineage = ctx(upstream_keys={"data": "k1"})
    # the value need not even be loaded: whatever stands there, the lineage decides
    assert INPUTS.compute_key(lineage, {"data": object(), "n": 1}) == INPUTS.compute_key(
        lineage, {"data": threading.Lock(), "n": 1}
    )
    assert INPUTS.compute_key(lineage, {"data": None}) != INPUTS.compute_key(
        ctx(upstream_keys={"data": "k2"}), {"data": None}
    )
    assert INPUTS.compute_key(lineage, {"data": "k1"}) != INPUTS.compute_key(ctx(), {"data": "k1"})


def test_an_unhashable_argument_warns_naming_it_or_raises_when_strict() -> None:
    params = {"config": {"db": [threading.Lock()]}, "n": 1}
    with pytest.warns(UncacheableCall, match=r"argument 'config' \['db'\]\[0\]: a _thread.lock"):
        assert INPUTS.compute_key(ctx(), params) is None
    with pytest.raises(UnhashableInput) as info:
        INPUTS.strict().compute_key(ctx(), params)
    assert (info.value.where, info.value.path) == ("argument 'config'", "['db'][0]")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (INPUTS - "config").compute_key(ctx(), params) is not None


def test_composition_is_none_if_any_part_is() -> None:
    params = {"x": 1}
    both = TASK_SOURCE + INPUTS
    assert both.compute_key(ctx(), params) == task_input_hash(ctx(), params)
    assert both.compute_key(ctx(), params) not in {
        TASK_SOURCE.compute_key(ctx(), params), INPUTS.compute_key(ctx(), params)
    }  # fmt: skip
    with pytest.warns(UncacheableCall):
        assert both.compute_key(ctx(), {"x": threading.Lock()}) is None
    assert (both - "x").compute_key(ctx(), {"x": 1}) == (both - "x").compute_key(ctx(), {"x": 2})
    assert (TASK_SOURCE + INPUTS + INPUTS) == (TASK_SOURCE + INPUTS)
    with pytest.raises(UnhashableInput):
        both.strict().compute_key(ctx(), {"x": threading.Lock()})


def test_none_never_caches_and_absorbs_what_is_added() -> None:
    assert NONE.compute_key(ctx(), {"x": 1}) is None
    assert (NONE + INPUTS).compute_key(ctx(), {"x": 1}) is None
    assert (INPUTS + NONE) is NONE


def test_taking_out_an_input_needs_inputs() -> None:
    with pytest.raises(TypeError, match="no 'x' to leave out"):
        TASK_SOURCE - "x"
    with pytest.raises(TypeError):
        (TASK_SOURCE + RUN_ID) - "x"


def test_run_id_and_flow_parameters() -> None:
    assert RUN_ID.compute_key(ctx(), {}) is None
    assert RUN_ID.compute_key(ctx(run_id="r1"), {}) != RUN_ID.compute_key(ctx(run_id="r2"), {})
    a = FLOW_PARAMETERS.compute_key(ctx(flow_parameters={"p": 1, "q": 2}), {})
    assert a == FLOW_PARAMETERS.compute_key(ctx(flow_parameters={"q": 2, "p": 1}), {})
    assert a != FLOW_PARAMETERS.compute_key(ctx(flow_parameters={"p": 1}), {})


def test_a_policy_of_your_own() -> None:
    class ByLength(CachePolicy):
        def compute_key(self, context: KeyContext, parameters: Any) -> str | None:
            return str(len(parameters["s"]))

    policy = ByLength() + INPUTS - "s"
    assert policy.compute_key(ctx(), {"s": "ab"}) == policy.compute_key(ctx(), {"s": "cd"})
    assert policy.compute_key(ctx(), {"s": "ab"}) != policy.compute_key(ctx(), {"s": "abc"})


def test_task_source_is_stable_across_processes() -> None:
    import os
    import subprocess
    import sys

    code = (
        "from headwater.cache import TASK_SOURCE, KeyContext\n"
        "from tests.cache.test_policies import scaled\n"
        "print(TASK_SOURCE.compute_key(KeyContext(scaled, 'scaled'), {}))"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
        env={**os.environ, "PYTHONHASHSEED": "99"},
    )  # fmt: skip
    assert out.stdout.strip() == source_key(scaled)


def test_a_function_shipped_by_value_keeps_its_key() -> None:
    # cloudpickle ships a function its worker cannot import by value, with no file name and so
    # no source there: the key must not depend on the source.
    import cloudpickle

    def local(x: int) -> int:
        return x * SCALE

    shipped = cloudpickle.loads(cloudpickle.dumps(local))
    assert shipped.__code__.co_filename == "<dynamic-code>"
    assert source_key(shipped) == source_key(local)
