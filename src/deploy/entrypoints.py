"""Entrypoints: the text that names a deployment's flow, and loading the flow it names.

Two forms, as Prefect users write them:

- `path/to/file.py:my_flow`: a Python file (relative to a base directory, or absolute) and
  the flow's name in it. The file is loaded as a module of its own, under a fresh name each
  time, so two checkouts of the same file (two commits of a repository) never share one.
- `package.module:my_flow`: an importable module and the flow's name in it.

`parse_entrypoint` only reads the text; `load_flow` imports, and every way that can go wrong
raises `EntrypointError` saying what is wrong and how to fix it.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import EntrypointError
from ..runtime.flows import Flow

FORMS = "'path/to/file.py:flow_function' or 'package.module:flow_function'"

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*")
_NOT_IN_NAME = re.compile(r"\W")
_loads = itertools.count()  # makes each loaded file's module name unique in this process


@dataclass(frozen=True, slots=True)
class Entrypoint:
    """A parsed entrypoint: exactly one of `path` (a `.py` file, as written) and `module` (a
    dotted module name) is set; `attribute` is the flow's name there (it may be dotted)."""

    path: str | None
    module: str | None
    attribute: str

    def __str__(self) -> str:
        return f"{self.path if self.path is not None else self.module}:{self.attribute}"


def parse_entrypoint(text: str) -> Entrypoint:
    """`text` as an `Entrypoint`, or `ValueError` naming it and showing the accepted forms."""
    # Split at the last colon: an absolute Windows path (C:\\...) has one of its own.
    where, colon, attribute = text.strip().rpartition(":")
    if colon and _DOTTED.fullmatch(attribute):
        if where.endswith(".py") and len(where) > len(".py"):
            return Entrypoint(path=where, module=None, attribute=attribute)
        if _DOTTED.fullmatch(where):
            return Entrypoint(path=None, module=where, attribute=attribute)
    raise ValueError(f"entrypoint {text!r} is not of the form {FORMS}")


def load_flow(entrypoint: str, base: Path | None = None) -> Flow[Any, Any]:
    """The flow `entrypoint` names. A relative file path is taken from `base` (default: the
    current directory). Raises `ValueError` for text that is not an entrypoint and
    `EntrypointError` when it names no loadable flow."""
    parsed = parse_entrypoint(entrypoint)
    if parsed.path is not None:
        module = _load_file(Path(base or Path.cwd()) / parsed.path)
    else:
        assert parsed.module is not None  # parse_entrypoint sets exactly one of the two
        module = _import_module(parsed.module)
    return _flow_in(module, parsed)


def _load_file(path: Path) -> ModuleType:
    """Run the file as a new module. Its directory is first on `sys.path` while it runs, so
    its own `import helpers` of a sibling file works."""
    path = path.resolve()
    if not path.is_file():
        raise EntrypointError(
            f"entrypoint file {str(path)!r} does not exist; check the path, which is taken "
            "relative to the deployment's source directory unless it is absolute"
        )
    name = f"headwater_entrypoint_{next(_loads)}_{_NOT_IN_NAME.sub('_', path.stem)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise EntrypointError(f"entrypoint file {str(path)!r} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would be: dataclasses and pickling look the
    # module up by name while its classes are being made.
    sys.modules[name] = module
    try:
        with _imports_from(path.parent):
            spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt, SystemExit: not the file's fault to report
        raise EntrypointError(
            f"entrypoint file {str(path)!r} raised {type(exc).__name__} while loading: {exc}; "
            "fix the error in that file (its traceback is the cause below)"
        ) from exc
    _ship_by_value(module)
    return module


@contextmanager
def _imports_from(directory: Path) -> Iterator[None]:
    """`directory` first on `sys.path` while the block runs; the modules imported from it
    are forgotten afterwards. Without that, loading another checkout of the same repository
    (another commit, the same file names) in this process would reuse the first checkout's
    sibling modules from `sys.modules` and silently run old code. The loaded module keeps
    what it imported; only a sibling imported later, inside a function, fails to import."""
    before = set(sys.modules)
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        sys.path.remove(str(directory))
        for name in set(sys.modules) - before:
            if _is_under(getattr(sys.modules[name], "__file__", None), directory):
                del sys.modules[name]


def _is_under(file: str | None, directory: Path) -> bool:
    return file is not None and Path(file).resolve().is_relative_to(directory)


def _ship_by_value(module: ModuleType) -> None:
    """cloudpickle sends functions of an importable module by reference, but no worker
    process can import this module's made-up name: send its functions' code instead."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise EntrypointError(
            f"entrypoint module {name!r} cannot be imported ({type(exc).__name__}: {exc}); "
            "install the package that provides it, or run from the directory that contains it"
        ) from exc


def _flow_in(module: ModuleType, entrypoint: Entrypoint) -> Flow[Any, Any]:
    where = entrypoint.path if entrypoint.path is not None else entrypoint.module
    found: Any = module
    for part in entrypoint.attribute.split("."):
        if not hasattr(found, part):
            flows = ", ".join(_flows_in(module)) or "none"
            raise EntrypointError(
                f"{where!r} has no attribute {entrypoint.attribute!r}; the flows it defines: "
                f"{flows}. Fix the name after the ':' in the entrypoint {str(entrypoint)!r}"
            )
        found = getattr(found, part)
    if not isinstance(found, Flow):
        raise EntrypointError(
            f"{str(entrypoint)!r} is a {_type_name(found)}, not a flow; decorate the "
            "function with @flow (from headwater import flow)"
        )
    return found


def _flows_in(module: ModuleType) -> list[str]:
    return sorted(name for name, value in vars(module).items() if isinstance(value, Flow))


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
