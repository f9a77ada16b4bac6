"""`hash_value`: stable, canonical, by content; unhashable values named by their path."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections import OrderedDict, namedtuple
from typing import Any

import pytest

from headwater.cache import UnhashableInput, hash_value

SAMPLE = {"b": [1, 2.5, None, True], "a": (b"x", "y"), "s": {3, "t", frozenset({1, 2})}, 7: 2**80}


def test_equal_inputs_hash_equal_in_other_processes_and_hash_seeds() -> None:
    code = (
        "from headwater.cache import hash_value\n"
        "print(hash_value({7: 2**80, 's': {frozenset({2, 1}), 't', 3}, 'a': (b'x', 'y'),"
        " 'b': [1, 2.5, None, True]}))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2", "12345")
    }  # fmt: skip
    assert outs == {hash_value(SAMPLE)}


def test_dict_and_set_order_do_not_count() -> None:
    assert hash_value({"a": 1, "b": 2}) == hash_value({"b": 2, "a": 1})
    assert hash_value({"x", "y", "z"}) == hash_value({"z", "y", "x"})
    assert hash_value({"a": 1}) != hash_value({"a": 2})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1, 2], (1, 2)),
        (1, 1.0),
        (1, True),
        (1.0, True),
        (0, None),
        ("1", 1),
        (b"a", "a"),
        ({1}, frozenset({1})),
        ([], {}),
        ([[1], 2], [1, [2]]),
        ({"a": [1]}, {"a": (1,)}),
        (2**70, 2**70 + 1),
        (OrderedDict(a=1), {"a": 1}),
    ],
)
def test_values_that_differ_hash_differently(a: object, b: object) -> None:
    assert hash_value(a) != hash_value(b)


def test_nested_structures_hash_by_content() -> None:
    build = lambda: {"cfg": [{"k": (1, 2)}, {"z", "q"}], "n": float("nan")}  # noqa: E731
    assert hash_value(build()) == hash_value(build())


def test_the_hook_decides_and_its_type_counts() -> None:
    class Token:
        def __init__(self, v: int, noise: object) -> None:
            self.v, self.noise = v, noise

        def __headwater_hash__(self) -> Any:
            return ("token", self.v)

    assert hash_value(Token(1, threading.Lock())) == hash_value(Token(1, object()))
    assert hash_value(Token(1, None)) != hash_value(Token(2, None))
    assert hash_value(Token(1, None)) != hash_value(("token", 1))


@dataclasses.dataclass
class Point:
    x: int
    y: list[int]


class Plain:
    def __init__(self, a: object) -> None:
        self.a = a


Pair = namedtuple("Pair", "a b")


def test_dataclasses_namedtuples_and_plain_objects_by_their_fields() -> None:
    assert hash_value(Point(1, [2])) == hash_value(Point(1, [2]))
    assert hash_value(Point(1, [2])) != hash_value(Point(1, [3]))
    assert hash_value(Pair(1, 2)) != hash_value((1, 2))
    assert hash_value(Plain({"a", "b"})) == hash_value(Plain({"b", "a"}))
    assert hash_value(Plain(1)) != hash_value(Plain(2))


def test_pydantic_models_by_their_fields() -> None:
    import pydantic

    class Model(pydantic.BaseModel):
        name: str
        tags: set[str]

    assert hash_value(Model(name="a", tags={"x", "y"})) == hash_value(Model(name="a", tags={"y", "x"}))
    assert hash_value(Model(name="a", tags=set())) != hash_value(Model(name="b", tags=set()))


def test_stdlib_values_by_content() -> None:
    import datetime
    import decimal
    import enum
    import pathlib
    import uuid

    Color = enum.Enum("Color", "RED BLUE")
    for make in (
        lambda i: datetime.datetime(2024, 1, 1 + i),
        lambda i: decimal.Decimal(i) / 3,
        lambda i: uuid.UUID(int=i),
        lambda i: pathlib.PurePosixPath(f"/data/{i}"),
        lambda i: list(Color)[i],
        lambda i: complex(i, 1),
        lambda i: range(i),
    ):
        assert hash_value(make(0)) == hash_value(make(0))
        assert hash_value(make(0)) != hash_value(make(1))


@pytest.mark.parametrize(
    ("value", "path", "type_name"),
    [
        ({"db": [threading.Lock()]}, "['db'][0]", "_thread.lock"),
        ((x for x in range(3)), "", "generator"),
        ([Plain(threading.RLock())], "[0].a", "_thread.RLock"),
    ],
)
def test_unhashable_values_raise_naming_the_path(value: object, path: str, type_name: str) -> None:
    with pytest.raises(UnhashableInput) as info:
        hash_value(value)
    assert (info.value.path, info.value.type_name) == (path, type_name)
    assert isinstance(info.value, TypeError)
    assert f"a {type_name} cannot be hashed" in str(info.value)


def test_an_open_file_is_unhashable(tmp_path: Any) -> None:
    (tmp_path / "f").write_text("data")
    with open(tmp_path / "f") as f, pytest.raises(UnhashableInput, match=r"\['f'\]: a _io.TextIOWrapper"):
        hash_value({"f": f})


def test_cycles_hash_canonically_and_do_not_hang() -> None:
    def ring(payload: int) -> list[Any]:
        a: list[Any] = [payload]
        a.append(a)
        return a

    assert hash_value(ring(1)) == hash_value(ring(1))
    assert hash_value(ring(1)) != hash_value(ring(2))
    d: dict[str, Any] = {}
    d["self"] = d
    hash_value(d)


def test_nesting_too_deep_is_refused() -> None:
    deep: list[Any] = []
    for _ in range(500):
        deep = [deep]
    with pytest.raises(UnhashableInput, match="nested more than"):
        hash_value(deep)


def test_plain_values_never_import_scientific_modules() -> None:
    code = (
        "import sys\nfrom headwater.cache import hash_value\n"
        "import dataclasses\n"
        "hash_value({'a': [1, 2.0, {3}], 'b': object(), 'c': dataclasses.make_dataclass('D', ['x'])(1)})\n"
        "print([m for m in ('numpy', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_buffers_by_content() -> None:
    assert hash_value(bytearray(b"abc")) == hash_value(bytearray(b"abc"))
    assert hash_value(bytearray(b"abc")) != hash_value(b"abc")
    assert hash_value(memoryview(b"abcd")[::2]) == hash_value(memoryview(b"ac"))
