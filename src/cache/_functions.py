"""What a function *is*, for a cache key: the parts that decide what it computes.

`function_identity(fn)` returns plain parts for `hashing` to walk:

- module and qualified name;
- the source text when `inspect` can find it (edits, comments and decorator lines count);
- the code object itself, walked structurally by `hashing` (bytecode, constants, names,
  nested code objects; never file names or line numbers, so moving a function is no edit).
  The bytecode is there even when the source is, because two lambdas on one line share
  their source text;
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

import inspect
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
        fn.__module__,
        fn.__qualname__,
        source_of(fn),
        code,
        fn.__defaults__,
        fn.__kwdefaults__,
        closure,
        referenced_globals(fn),
    )


def source_of(fn: types.FunctionType) -> str | None:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # built in a REPL, by exec, or from a .pyc alone
        return None


def global_names(code: types.CodeType) -> set[str]:
    """Names `code` and the code objects nested in it look up (a superset of its globals)."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= global_names(const)
    return names


def referenced_globals(fn: types.FunctionType) -> dict[str, Lenient]:
    module_globals = fn.__globals__
    return {
        name: Lenient(module_globals[name])
        for name in global_names(fn.__code__)
        if name in module_globals
    }
