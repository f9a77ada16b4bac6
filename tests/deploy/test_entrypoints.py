"""Entrypoints: parsing both forms, loading real files and modules, and every load error."""

from __future__ import annotations

import pickle
import sys
import textwrap
from pathlib import Path

import cloudpickle
import pytest

from headwater.deploy.entrypoints import Entrypoint, load_flow, parse_entrypoint
from headwater.errors import EntrypointError, HeadwaterError
from headwater.runtime.flows import Flow


@pytest.fixture(autouse=True)
def _unrecorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_RECORD", "0")  # flows run without a state service


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


FLOWS = """
    from headwater import flow

    @flow
    def double(n: int) -> int:
        return 2 * n

    @flow(name="other")
    def another() -> str:
        return "other"

    def plain() -> None:
        pass

    NUMBER = 7
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("flows.py:double", Entrypoint("flows.py", None, "double")),
        ("path/to/flows.py:double", Entrypoint("path/to/flows.py", None, "double")),
        ("/abs/path/flows.py:double", Entrypoint("/abs/path/flows.py", None, "double")),
        ("C:\\work\\flows.py:double", Entrypoint("C:\\work\\flows.py", None, "double")),
        ("package.module:double", Entrypoint(None, "package.module", "double")),
        ("module:double", Entrypoint(None, "module", "double")),
        ("module:namespace.double", Entrypoint(None, "module", "namespace.double")),
    ],
)
def test_parses_both_forms(text: str, expected: Entrypoint) -> None:
    assert parse_entrypoint(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    "text", ["flows.py", "flows.py:", ":double", "data/flows.txt:double", "package/module:double", "a.b:1x", "a:b:c", ""]
)
def test_rejects_anything_else_naming_it_and_both_forms(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_entrypoint(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "path/to/file.py:flow_function" in message and "package.module:flow_function" in message


def test_loads_a_file_relative_to_base_and_calls_the_flow(tmp_path: Path) -> None:
    write(tmp_path / "project" / "flows.py", FLOWS)
    loaded = load_flow("flows.py:double", base=tmp_path / "project")
    assert isinstance(loaded, Flow)
    assert loaded(21) == 42


def test_a_relative_path_defaults_to_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "sub" / "flows.py", FLOWS)
    monkeypatch.chdir(tmp_path)
    assert load_flow("sub/flows.py:another")() == "other"


def test_an_absolute_path_ignores_base(tmp_path: Path) -> None:
    path = write(tmp_path / "flows.py", FLOWS)
    assert load_flow(f"{path}:double", base=tmp_path / "elsewhere")(1) == 2


def test_sibling_imports_work_and_two_copies_of_one_layout_never_share_modules(tmp_path: Path) -> None:
    """Two checkouts with the same file names (two commits, say) loaded in one process each
    run their own code, helpers included; the file's directory is off sys.path afterwards."""
    for version in (1, 2):
        write(tmp_path / f"v{version}" / "helpers.py", f"VERSION = {version}\n")
        write(
            tmp_path / f"v{version}" / "flows.py",
            """
            from headwater import flow
            import helpers

            @flow
            def which() -> int:
                return helpers.VERSION
            """,
        )
    path_before = list(sys.path)
    first = load_flow("flows.py:which", base=tmp_path / "v1")
    second = load_flow("flows.py:which", base=tmp_path / "v2")
    assert (first(), second()) == (1, 2)
    assert first.fn.__module__ != second.fn.__module__
    assert sys.path == path_before
    assert "helpers" not in sys.modules


def test_a_loaded_files_functions_pickle_by_value(tmp_path: Path) -> None:
    """A worker process cannot import the made-up module name, so its code travels with it."""
    write(tmp_path / "flows.py", FLOWS)
    loaded = load_flow("flows.py:double", base=tmp_path)
    shipped = cloudpickle.dumps(loaded.fn)
    del sys.modules[loaded.fn.__module__]  # as on a worker: the module is nowhere to import
    assert pickle.loads(shipped)(4) == 8


def test_loads_an_importable_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "pkg_for_entrypoint_test" / "__init__.py", "")
    write(tmp_path / "pkg_for_entrypoint_test" / "flows.py", FLOWS)
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_flow("pkg_for_entrypoint_test.flows:double")
    assert loaded(5) == 10


def test_a_missing_file_names_the_absolute_path_tried(tmp_path: Path) -> None:
    with pytest.raises(EntrypointError) as caught:
        load_flow("nowhere/flows.py:double", base=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "nowhere" / "flows.py") in message
    assert "does not exist" in message and "relative to" in message
    assert isinstance(caught.value, HeadwaterError)


def test_an_unimportable_module_names_it_and_the_import_error() -> None:
    with pytest.raises(EntrypointError) as caught:
        load_flow("no_such_package_anywhere.flows:double")
    message = str(caught.value)
    assert "'no_such_package_anywhere.flows'" in message
    assert "No module named 'no_such_package_anywhere'" in message
    assert "install the package" in message
    assert isinstance(caught.value.__cause__, ImportError)


def test_a_missing_attribute_lists_the_flows_that_exist(tmp_path: Path) -> None:
    write(tmp_path / "flows.py", FLOWS)
    with pytest.raises(EntrypointError) as caught:
        load_flow("flows.py:tripple", base=tmp_path)
    message = str(caught.value)
    assert "no attribute 'tripple'" in message
    assert "the flows it defines: another, double." in message
    assert "after the ':'" in message


def test_a_missing_attribute_in_a_module_without_flows_says_none(tmp_path: Path) -> None:
    write(tmp_path / "empty.py", "X = 1\n")
    with pytest.raises(EntrypointError, match="the flows it defines: none"):
        load_flow("empty.py:X.y", base=tmp_path)


@pytest.mark.parametrize(("attribute", "type_name"), [("plain", "function"), ("NUMBER", "int")])
def test_an_attribute_that_is_not_a_flow_says_its_type_and_to_use_flow(
    tmp_path: Path, attribute: str, type_name: str
) -> None:
    write(tmp_path / "flows.py", FLOWS)
    with pytest.raises(EntrypointError) as caught:
        load_flow(f"flows.py:{attribute}", base=tmp_path)
    message = str(caught.value)
    assert f"'flows.py:{attribute}' is a {type_name}, not a flow" in message
    assert "@flow" in message


def test_an_exception_while_loading_the_file_is_chained_and_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.py", "import headwater\nraise RuntimeError('no database configured')\n")
    with pytest.raises(EntrypointError) as caught:
        load_flow("broken.py:anything", base=tmp_path)
    message = str(caught.value)
    assert str(path) in message
    assert "RuntimeError while loading: no database configured" in message
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert not any(name.startswith("headwater_entrypoint_") and "broken" in name for name in sys.modules)
