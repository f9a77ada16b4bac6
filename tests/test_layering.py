"""The package layers, pinned: arrows between `src/` packages go one way (docs/design.md).

    cli ──> everything
    headwater (the package root and the Prefect-path aliases) ──> runtime, runners, cache, errors
    runtime ──> runners, cache, api, errors     (api only lazily: it imports grpc)
    runtime ··> deploy                          (lazily: Flow.serve/deploy/to_deployment/from_source)
    deploy ──> runtime, runners, cache, api, blocks, errors   (the coordination plane; a worker
                                                 sends automations' notifications through blocks)
    events ──> deploy, runtime, runners, cache, api, errors
    blocks ──> runtime, runners, cache, api, errors   (typed configuration, secrets, variables)
    api ──> cache, errors                       (the state service serves the result cache)
    runners, cache ──> errors
    errors ──> nothing of ours

Every module is parsed with `ast`, never imported, so a violation fails here even when it
would only show up as a cycle at run time. Imports inside functions and under
`if TYPE_CHECKING:` count: a deferred or type-only import is still an arrow.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "headwater"

# layer -> the other layers it may import. The layer of `headwater.X.y` is X; the package
# root (`headwater/__init__.py`, the public facade) is its own layer, "headwater", and so are
# the modules that alias it under the paths Prefect users type: like the root, they only re-export.
FACADE_ALIASES = frozenset({"futures", "states", "task_runners", "context", "logging", "tasks"})
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "runners": frozenset({"errors"}),
    "cache": frozenset({"errors"}),
    "api": frozenset({"cache", "errors"}),
    "runtime": frozenset({"runners", "cache", "api", "errors", "deploy"}),
    "deploy": frozenset({"runtime", "runners", "cache", "api", "blocks", "errors"}),
    "events": frozenset({"runtime", "runners", "cache", "api", "errors", "deploy"}),
    "automations": frozenset({"runtime", "runners", "cache", "api", "errors", "deploy"}),
    "blocks": frozenset({"runtime", "runners", "cache", "api", "errors"}),
    "cli": frozenset({"headwater", "runtime", "runners", "cache", "api", "errors", "deploy", "blocks", "events", "automations"}),
    "headwater": frozenset({"runtime", "runners", "cache", "errors", "deploy"}),
}
# Arrows that must never be taken at import time: `import headwater` stays free of grpc.
# `Flow.serve`, `.deploy`, `.to_deployment` and `.from_source` are the runtime's entry points into
# the coordination plane: they load `deploy` when called, which stands on the runtime.
LAZY_ONLY: frozenset[tuple[str, str]] = frozenset({("runtime", "api"), ("runtime", "deploy"), ("headwater", "deploy")})


@dataclass(frozen=True)
class Arrow:
    path: str
    line: int
    statement: str
    target: str  # the module of ours it imports
    at_import_time: bool  # module level, not in a function or under TYPE_CHECKING


def module_name(path: Path) -> tuple[str, bool]:
    """`src/runners/_thread.py` -> ("headwater.runners._thread", False); packages -> True."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join([ROOT, *parts]), is_package


def all_modules() -> dict[str, Path]:
    return {module_name(p)[0]: p for p in sorted(SRC.rglob("*.py"))}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] in FACADE_ALIASES):
        return ROOT
    return parts[1]


def _resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    package = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 > len(package) - 1:
        raise ValueError(f"relative import beyond the top of {ROOT}: level {node.level}")
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def arrows(source: str, module: str, is_package: bool, path: str, known: set[str]) -> list[Arrow]:
    """Every import of one of our modules in `source`, wherever it sits."""
    found: list[Arrow] = []

    def add(node: ast.stmt, target: str, eager: bool) -> None:
        if target == ROOT or target.startswith(ROOT + "."):
            found.append(Arrow(path, node.lineno, ast.unparse(node), target, eager))

    def visit(node: ast.AST, eager: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name, eager)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(node, module, is_package)
            if base is not None:
                for alias in node.names:
                    # `from .. import errors` imports the module headwater.errors.
                    candidate = f"{base}.{alias.name}"
                    add(node, candidate if candidate in known else base, eager)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            eager = False
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, eager)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, eager)

    visit(ast.parse(source, filename=path), True)
    return found


def collect() -> list[tuple[str, Arrow]]:
    """(layer of the importing module, arrow) for every import of ours under src/."""
    modules = all_modules()
    known = set(modules)
    result = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        rel = str(path.relative_to(SRC.parent))
        for arrow in arrows(path.read_text(encoding="utf-8"), name, is_package, rel, known):
            result.append((layer_of(name), arrow))
    return result


def test_every_package_has_a_place_in_the_layers() -> None:
    layers = {layer_of(name) for name in all_modules()}
    unplaced = layers - set(ALLOWED)
    assert not unplaced, f"add {sorted(unplaced)} to ALLOWED in tests/test_layering.py"


def test_imports_follow_the_one_way_arrows() -> None:
    violations = []
    for layer, arrow in collect():
        target_layer = layer_of(arrow.target)
        if target_layer == layer or target_layer in ALLOWED.get(layer, frozenset()):
            continue
        allowed = ", ".join(sorted(ALLOWED.get(layer, ()))) or "nothing of ours"
        violations.append(
            f"{arrow.path}:{arrow.line}: `{arrow.statement}` imports {arrow.target}; "
            f"{layer} may import only {allowed}"
        )
    assert not violations, "layering violations:\n" + "\n".join(violations)


def test_lazy_only_arrows_are_never_taken_at_import_time() -> None:
    violations = [
        f"{arrow.path}:{arrow.line}: `{arrow.statement}` runs at import time; "
        f"import {layer_of(arrow.target)} inside the function that needs it"
        for layer, arrow in collect()
        if arrow.at_import_time and (layer, layer_of(arrow.target)) in LAZY_ONLY
    ]
    assert not violations, "\n".join(violations)


def test_the_checker_sees_the_arrows_it_guards() -> None:
    """Guards the guard: if parsing went wrong, the tests above would pass vacuously."""
    seen = {(layer, layer_of(arrow.target)) for layer, arrow in collect()}
    assert {("runtime", "runners"), ("runtime", "api"), ("runners", "errors")} <= seen
    assert ("headwater", "runners") in seen  # `task_runners`, an alias, counts as the facade


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ..runtime import engine", [("headwater.runtime.engine", True)]),
        ("from ..runtime.states import State", [("headwater.runtime.states", True)]),
        ("from .. import errors", [("headwater.errors", True)]),
        ("from .. import __version__", [("headwater", True)]),
        ("from .base import TaskCall", [("headwater.runners.base", True)]),
        ("import headwater.api", [("headwater.api", True)]),
        ("import grpc\nfrom os import path", []),
        ("def f():\n    from ..api import client", [("headwater.api.client", False)]),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..runtime import tasks",
            [("headwater.runtime.tasks", False)],
        ),
        (
            "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    from ..cli import _main",
            [("headwater.cli._main", True)],
        ),
    ],
)
def test_resolves_imports_in_a_runners_module(
    source: str, expected: list[tuple[str, bool]]
) -> None:
    known = set(all_modules())
    found = arrows(source, "headwater.runners._example", False, "src/runners/_example.py", known)
    assert [(a.target, a.at_import_time) for a in found] == expected
