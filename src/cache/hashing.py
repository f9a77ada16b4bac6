"""Stable content hashes for cache keys: `hash_value(value) -> str` (SHA-256, hex).

The same value gives the same hash in any process, under any `PYTHONHASHSEED`, whatever
order a dict or set was built in. The value is walked and each part written to one SHA-256
as a self-delimiting token: a msgpack array `[tag, ...]`, raw buffers following a token that
states their length. Tags keep `1`, `1.0` and `True` apart, and lists apart from tuples.
Dicts and sets hash each entry on its own and sort the entry digests, so order never counts.

What decides a value's hash, first match wins:

1. None, bool, int, float (one NaN), str, bytes: by value.
2. `type(value).__headwater_hash__(value)`, if defined: its return value (bytes, str or
   any plain data), tagged with the type's qualified name.
3. numpy arrays and scalars, pandas DataFrame/Series/Index: by content (dtype, shape and
   the bytes; `pandas.util.hash_pandas_object` plus labels and dtypes). Only values whose type
   comes from numpy or pandas take this path, and those modules are then already imported:
   nothing here imports them.
4. list, tuple, dict, set, frozenset (a subclass adds its type's name); bytearray,
   memoryview.
5. dataclass instances and pydantic models: type name and field values.
6. Functions: library functions (stdlib, site-packages) by qualified name, user code by what
   it computes (`_functions.function_identity`: source, bytecode, defaults, closure values,
   referenced globals). Classes, builtins and modules by qualified name; code objects by
   bytecode, constants and names.
7. Anything else through the pickle protocol (`__reduce_ex__(4)`): the reconstructor and
   its arguments and state, walked by these same rules, so a set inside an object is still
   order independent. Enums, datetimes, Decimal, UUID, paths and plain objects go this way.
8. Last, `cloudpickle.dumps(value)`, for what the pickle protocol cannot take but cloudpickle
   can (classes defined inside functions, properties, mapping proxies); never for open files,
   which cloudpickle would pickle by their current contents. Pickled bytes are only as
   deterministic as the pickling: stable for one object graph and library version, not
   across versions.

What fails all of these raises `UnhashableInput` naming the path inside the value
(`['db'][0]: a _thread.lock`): locks, generators, open files, anything whose pickling fails.
A structure nested deeper than `MAX_DEPTH` raises too. A cycle does not: a reference back to
an object being walked is written as its position on the path, so cyclic data hashes
canonically and never hangs.

Large buffers are handed to SHA-256 as they are (a C-contiguous array is not copied), so a
big numpy array hashes at `hashlib` speed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import sys
import sysconfig
import types
from collections.abc import Callable
from typing import Any, Protocol

import msgpack

from ..errors import UnhashableInput
from ._functions import Lenient, StaticPart, function_identity

#: Every hash starts with this: changing the encoding means changing the version here.
_SALT = b"headwater-cache-keys/1\0"
#: How deep a value may nest (containers, fields, pickled state) before it is refused.
MAX_DEPTH = 100


class _Sink(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


def hash_value(value: object) -> str:
    """The hex SHA-256 of `value`'s canonical encoding (see the module doc).

    Raises `UnhashableInput` naming the path to the first part that cannot be hashed."""
    sink = hashlib.sha256(_SALT)
    walker = _Walker()
    try:
        walker.walk(value, sink, 0)
    except RecursionError:
        raise UnhashableInput("", "", type_name(value), "nested too deep to walk") from None
    return sink.hexdigest()


def type_name(value: object) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', repr(obj))}"


@functools.lru_cache(maxsize=1024)
def is_library_module(module: str | None) -> bool:
    """Stdlib and installed packages: their functions are named, not hashed by content."""
    if not module:
        return False
    top = module.partition(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        return True
    file = getattr(sys.modules.get(module), "__file__", None) or ""
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    return any(os.path.abspath(file).startswith(root + os.sep) for root in roots)


_SCALARS: dict[type, str] = {type(None): "n", bool: "?", str: "s", bytes: "b"}
_SCIENTIFIC = frozenset({"numpy", "pandas"})


@functools.lru_cache(maxsize=4096)
def _static_digest(part: StaticPart) -> bytes:
    """A function's names, source and code, hashed once per code object (see `StaticPart`)."""
    sink = hashlib.sha256(_SALT)
    _Walker().walk(part.parts(), sink, 0)
    return sink.digest()


class _Walker:
    """One walk over one value: the path taken so far, for back references and errors."""

    __slots__ = ("on_path", "labels", "_pack")

    def __init__(self) -> None:
        self.on_path: dict[int, int] = {}  # id of an object being walked -> its depth
        self.labels: list[str] = []
        self._pack: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack

    def token(self, sink: _Sink, *parts: Any) -> None:
        sink.update(self._pack(parts))

    def error(self, value: object, reason: str) -> UnhashableInput:
        return UnhashableInput("", "".join(self.labels), type_name(value), reason)

    def child(self, value: object, sink: _Sink, depth: int, label: str) -> None:
        self.labels.append(label)
        try:
            self.walk(value, sink, depth)
        finally:
            self.labels.pop()

    def digest(self, value: object, depth: int, label: str) -> bytes:
        sub = hashlib.sha256()
        self.child(value, sub, depth, label)
        return sub.digest()

    def walk(self, value: object, sink: _Sink, depth: int) -> None:
        t = type(value)
        tag = _SCALARS.get(t)
        if tag is not None:
            self.token(sink, tag, value)
        elif t is int:
            self._int(value, sink)  # type: ignore[arg-type]
        elif t is float:
            self.token(sink, "f", "nan" if value != value else value)
        else:
            if depth >= MAX_DEPTH:
                raise self.error(value, f"nested more than {MAX_DEPTH} levels deep")
            key = id(value)
            if key in self.on_path:  # a cycle: name the ancestor by its depth
                self.token(sink, "<", self.on_path[key])
                return
            self.on_path[key] = depth
            try:
                self._compound(value, sink, depth + 1)
            finally:
                del self.on_path[key]

    def _int(self, value: int, sink: _Sink) -> None:
        if -(2**63) <= value < 2**64:
            self.token(sink, "i", value)
        else:
            size = (value.bit_length() + 8) // 8
            self.token(sink, "I", value.to_bytes(size, "big", signed=True))

    def _compound(self, value: Any, sink: _Sink, depth: int) -> None:
        t = type(value)
        hook = getattr(t, "__headwater_hash__", None)
        if hook is not None and not isinstance(value, type):
            self.token(sink, "hook", _qualified(t))
            self.child(hook(value), sink, depth, ".__headwater_hash__()")
            return
        if t.__module__.partition(".")[0] in _SCIENTIFIC and _scientific(self, value, sink, depth):
            return
        for kind, handler in _BY_KIND:
            if isinstance(value, kind):
                handler(self, value, sink, depth)
                return
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            names = [f.name for f in dataclasses.fields(value)]
            self._fields("dc", value, names, sink, depth)
        elif isinstance(getattr(t, "__pydantic_fields__", None), dict):
            self._fields("pyd", value, list(t.__pydantic_fields__), sink, depth)
            self.child(getattr(value, "__pydantic_extra__", None), sink, depth, ".<extra>")
        else:
            self._reduce(value, sink, depth)

    def _fields(self, tag: str, value: Any, names: list[str], sink: _Sink, depth: int) -> None:
        self.token(sink, tag, _qualified(type(value)), names)
        for name in names:
            self.child(getattr(value, name), sink, depth, f".{name}")

    def sequence(self, value: list[Any] | tuple[Any, ...], sink: _Sink, depth: int) -> None:
        base = list if isinstance(value, list) else tuple
        sub = None if type(value) is base else _qualified(type(value))
        self.token(sink, "l" if base is list else "t", len(value), sub)
        for i, item in enumerate(value):
            self.child(item, sink, depth, f"[{i}]")

    def mapping(self, value: dict[Any, Any], sink: _Sink, depth: int) -> None:
        sub = None if type(value) is dict else _qualified(type(value))
        pairs = sorted(
            (self.digest(k, depth, "<a key>"), self.digest(v, depth, f"[{k!r:.60}]"))
            for k, v in value.items()
        )
        self.token(sink, "d", len(pairs), sub)
        for k, v in pairs:
            sink.update(k + v)

    def unordered(self, value: set[Any] | frozenset[Any], sink: _Sink, depth: int) -> None:
        digests = sorted(self.digest(item, depth, "{…}") for item in value)
        tag = "S" if isinstance(value, set) else "F"
        self.token(sink, tag, len(digests), _qualified(type(value)))
        for d in digests:
            sink.update(d)

    def buffer(self, value: bytearray | memoryview, sink: _Sink, depth: int) -> None:
        view = memoryview(value)
        self.token(sink, "buf", type_name(value), view.format, view.shape, view.nbytes)
        sink.update(view.cast("B") if view.c_contiguous else view.tobytes())

    def function(self, value: types.FunctionType, sink: _Sink, depth: int) -> None:
        if is_library_module(value.__module__) and "<locals>" not in value.__qualname__:
            self.token(sink, "named", "function", _qualified(value))
        else:
            self.token(sink, "fn")
            self.child(function_identity(value), sink, depth, f"<function {value.__qualname__}>")

    def method(self, value: types.MethodType, sink: _Sink, depth: int) -> None:
        self.token(sink, "method")
        self.child(value.__func__, sink, depth, f".{value.__func__.__name__}")
        self.child(value.__self__, sink, depth, ".__self__")

    def named(self, value: Any, sink: _Sink, depth: int) -> None:
        kind = "module" if isinstance(value, types.ModuleType) else "builtin"
        name = value.__name__ if kind == "module" else _qualified(value)
        self.token(sink, "named", kind, name)

    def klass(self, value: type, sink: _Sink, depth: int) -> None:
        self.token(sink, "named", "class", _qualified(value))
        if "<locals>" in value.__qualname__:  # two local classes may share a qualified name
            self._pickled(value, sink, "a class defined in a function")

    def code(self, value: types.CodeType, sink: _Sink, depth: int) -> None:
        c = value
        self.token(sink, "code", c.co_argcount, c.co_posonlyargcount, c.co_kwonlyargcount,
                   c.co_flags, c.co_name, c.co_code)  # fmt: skip
        for part in (c.co_consts, c.co_names, c.co_varnames, c.co_freevars, c.co_cellvars):
            self.child(part, sink, depth, f"<code {c.co_name}>")

    def static(self, value: StaticPart, sink: _Sink, depth: int) -> None:
        self.token(sink, "static")
        sink.update(_static_digest(value))

    def lenient(self, value: Lenient, sink: _Sink, depth: int) -> None:
        labels = len(self.labels)
        try:
            digest = self.digest(value.value, depth, "")
        except UnhashableInput:
            del self.labels[labels:]
            self.token(sink, "type-only", type_name(value.value))
        else:
            self.token(sink, "value")
            sink.update(digest)

    def _reduce(self, value: Any, sink: _Sink, depth: int) -> None:
        try:
            reduced = value.__reduce_ex__(4)
        except Exception as exc:  # noqa: BLE001 - any failure means "not by the protocol"
            self._pickled(value, sink, f"{type(exc).__name__}: {exc}")
            return
        if isinstance(reduced, str):  # a module-level singleton, pickled by name
            self.token(sink, "global", _qualified(type(value)), reduced)
            return
        fn, args, state, items, pairs = (tuple(reduced) + (None,) * 5)[:5]
        self.token(sink, "reduce", len(reduced))
        self.child(fn, sink, depth, "<reconstructor>")
        self.child(args, sink, depth, "<args>")
        if isinstance(state, dict) and all(type(k) is str for k in state):
            self.token(sink, "attrs", len(state))
            for name in sorted(state):
                self.token(sink, "s", name)
                self.child(state[name], sink, depth, f".{name}")
        else:
            self.child(state, sink, depth, "<state>")
        self.child(None if items is None else list(items), sink, depth, "<items>")
        self.child(None if pairs is None else dict(pairs), sink, depth, "<items>")

    def _pickled(self, value: Any, sink: _Sink, reason: str) -> None:
        import cloudpickle

        if isinstance(value, io.IOBase):  # cloudpickle would pickle a file's current contents
            raise self.error(value, f"an open file or stream has no stable content; {reason}")

        try:
            data = cloudpickle.dumps(value, protocol=5)
        except Exception as exc:  # noqa: BLE001 - whatever pickling raises, it is not hashable
            raise self.error(value, reason) from exc
        self.token(sink, "pickle", len(data))
        sink.update(data)


_Handler = Callable[[_Walker, Any, _Sink, int], None]
_BY_KIND: tuple[tuple[type | tuple[type, ...], _Handler], ...] = (
    ((list, tuple), _Walker.sequence),
    (dict, _Walker.mapping),
    ((set, frozenset), _Walker.unordered),
    ((bytearray, memoryview), _Walker.buffer),
    (types.FunctionType, _Walker.function),
    (types.MethodType, _Walker.method),
    ((types.ModuleType, types.BuiltinFunctionType), _Walker.named),
    (type, _Walker.klass),
    (types.CodeType, _Walker.code),
    (Lenient, _Walker.lenient),
    (StaticPart, _Walker.static),
    ((bool, int, float, str, bytes), _Walker._reduce),  # subclasses: by pickle, with the type
)


def _scientific(walker: _Walker, value: Any, sink: _Sink, depth: int) -> bool:
    """numpy and pandas values by content; False hands the value back to the general rules."""
    np = sys.modules.get("numpy")
    if np is not None and type(value) is np.ndarray:
        if value.dtype.hasobject:
            walker.token(sink, "ndarray-objects", list(value.shape))
            walker.child(value.tolist(), sink, depth, ".tolist()")
        else:
            array = value if value.flags.c_contiguous else np.ascontiguousarray(value)
            walker.token(sink, "ndarray", str(array.dtype.descr), list(array.shape), array.nbytes)
            sink.update(memoryview(array.reshape(-1).view(np.uint8)))
        return True
    if np is not None and isinstance(value, np.generic) and not isinstance(value, np.object_):
        walker.token(sink, "npscalar", str(value.dtype.descr), value.tobytes())
        return True
    pd = sys.modules.get("pandas")
    if pd is None or not isinstance(value, (pd.DataFrame, pd.Series, pd.Index)):
        return False
    _pandas(walker, value, sink, depth, pd)
    return True


def _pandas(walker: _Walker, value: Any, sink: _Sink, depth: int, pd: Any) -> None:
    """A frame, series or index: labels and dtypes walked, rows by `hash_pandas_object`."""
    walker.token(sink, "pandas", type_name(value), list(value.shape))
    labels: tuple[Any, ...]
    if isinstance(value, pd.DataFrame):
        labels = ([str(d) for d in value.dtypes], list(value.columns), list(value.index.names))
        cells: Callable[[], Any] = lambda: value.to_dict(orient="split")
    elif isinstance(value, pd.Series):
        labels = ([str(value.dtype)], value.name, list(value.index.names))
        cells = lambda: (list(value.index), value.tolist())  # noqa: E731
    else:
        labels = ([str(value.dtype)], list(value.names), None)
        cells = value.tolist
    walker.child(labels, sink, depth, "<labels>")
    try:
        index = {} if isinstance(value, pd.Index) else {"index": True}
        rows = pd.util.hash_pandas_object(value, **index).to_numpy()
    except TypeError:  # unhashable cells (lists, dicts): walk them instead
        walker.token(sink, "cells")
        walker.child(cells(), sink, depth, ".values")
        return
    walker.token(sink, "rows", rows.nbytes)
    sink.update(memoryview(rows.view("uint8")))
