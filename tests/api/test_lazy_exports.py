"""`headwater.api` imports its names when first used: the lazy table, the imports mypy reads
and `__all__` must name the same things, and importing the package must stay cheap."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import headwater.api

INIT = Path(headwater.api.__file__)


def _type_checking_imports() -> dict[str, str]:
    """`name -> module` of the `from X import Y as Y` lines under `if TYPE_CHECKING:`."""
    tree = ast.parse(INIT.read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                for alias in imp.names:
                    found[alias.asname or alias.name] = "." * imp.level + (imp.module or "")
    return found


def test_the_lazy_table_the_typed_imports_and_all_agree() -> None:
    sources = headwater.api._SOURCES
    assert _type_checking_imports() == sources
    assert set(headwater.api.__all__) == set(sources)


def test_every_name_resolves_to_its_modules_object() -> None:
    for name, source in headwater.api._SOURCES.items():
        module = importlib.import_module(source, "headwater.api")
        assert getattr(headwater.api, name) is getattr(module, name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        headwater.api.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")


def test_importing_the_package_imports_no_grpc_pydantic_or_models() -> None:
    code = (
        "import sys, headwater.api; "
        "print(','.join(m for m in ('grpc', 'pydantic', 'msgpack', 'headwater.api.models') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
