"""What a function *is*, for a cache key: the parts that decide what it computes.

`function_identity(fn)` returns plain parts for `hashing` to walk:

- its qualified name (not its module's: `python flows.py` and `import flows` agree);
- the code object itself, walked structurally by `hashing` (bytecode, constants (the
  docstring among them), names, nested code objects; never file names or line numbers, so
  moving a function is no edit). Not the source text: a function that reaches a Dask or
  Ray worker by value (cloudpickle) has no source there (its code's file name is
  `<dynamic-code>`), and its key must be the one the flow's process computes. An edit that
  leaves the bytecode as it was (a comment) is no edit;
- default argument values;
- the values of its closure cells, by name: a task built in a loop over different values
  gets a different identity for each (an unhashable closure value makes the key fail, as an
  unhashable argument does: it is an input in all but name);
- the globals its code refers to (names in `co_names`, through nested code objects, that
  the function's module actually defines), each wrapped in `Lenient`: a global that cannot be
  hashed (a module-level lock, a client) contributes only its type, since it is environment
  rather than data. Modules count by name, library functions and classes by qualified name,
  functions of user code by their own identity (recursively; a cycle becomes a back reference
  in `hashing`).

This module imports nothing of ours: `hashing` calls it, never the other way round.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Lenient:
    """A value whose failure to hash costs only precision: `hashing` writes its type instead."""

    value: Any


class _EmptyCell:
    """Stands for a closure cell not yet filled (a name assigned after the inner def)."""

    def __headwater_hash__(self) -> str:
        return "empty cell"


EMPTY_CELL = _EmptyCell()


def function_identity(fn: types.FunctionType) -> tuple[Any, ...]:
    """The parts of `fn` that a change to its behaviour would change (see the module doc)."""
    code = fn.__code__
    closure: dict[str, Any] = {}
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            closure[name] = cell.cell_contents
        except ValueError:
            closure[name] = EMPTY_CELL
    return (
        StaticPart(code, fn.__module__, fn.__qualname__),
        fn.__defaults__,
        fn.__kwdefaults__,
        closure,
        referenced_globals(fn),
    )


@dataclass(frozen=True, slots=True)
class StaticPart:
    """What cannot change while a function object lives: its name and code. Code objects are
    immutable, so `hashing` hashes this once per code object; defaults, closure values and
    globals are hashed on every call."""

    code: types.CodeType
    module: str
    qualname: str

    def parts(self) -> tuple[Any, ...]:
        # Not the module's name: a script's functions are in `__main__` when run and in their
        # module when imported, and they compute the same. Not the source: see the module doc.
        return (self.qualname, self.code)


@functools.lru_cache(maxsize=4096)
def global_names(code: types.CodeType) -> frozenset[str]:
    """Names `code` and the code objects nested in it look up (a superset of its globals)."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= global_names(const)
    return frozenset(names)


def referenced_globals(fn: types.FunctionType) -> dict[str, Lenient]:
    module_globals = fn.__globals__
    return {
        name: Lenient(module_globals[name])
        for name in global_names(fn.__code__)
        if name in module_globals
    }
