"""`headwater variable ls | get NAME | set NAME VALUE | unset NAME`: JSON values kept in the
state service (`api/block_store.py`), all with `--json`. VALUE is read as JSON when it parses
(`3`, `true`, `{"a": 1}`), else kept as text, as `--param` is. Registering imports only the
standard library (`tests/cli/test_startup.py`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._deploy_common import guarded, print_json


def register(subparsers: Any) -> None:
    variables = subparsers.add_parser("variable", help="named JSON values flows read (Variable.get)")
    verbs = variables.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("ls", help="every variable")
    get = verbs.add_parser("get", help="one variable's value")
    get.add_argument("name", metavar="NAME")
    put = verbs.add_parser("set", help="set a variable (JSON when VALUE parses as JSON, else text)")
    put.add_argument("name", metavar="NAME")
    put.add_argument("value", metavar="VALUE")
    put.add_argument("--overwrite", action="store_true", help="replace an existing value")
    put.add_argument("--tag", action="append", default=[], metavar="T", help="a tag (repeat)")
    unset = verbs.add_parser("unset", help="remove a variable")
    unset.add_argument("name", metavar="NAME")
    for parser, handler in ((ls, list_variables), (get, get_variable), (put, set_variable), (unset, unset_variable)):
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=guarded("variable", handler))
    variables.set_defaults(handler=lambda args: variables.print_help() or 2)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _shape(info: Any) -> dict[str, Any]:
    from ._run_shapes import iso

    return {"name": info.name, "value": info.value, "tags": list(info.tags), "created": iso(info.created),
            "updated": iso(info.updated)}  # fmt: skip


def list_variables(args: argparse.Namespace) -> int:
    from ..api.block_client import block_client

    with block_client() as client:
        found = client.list_variables()
    if args.json:
        print_json([_shape(v) for v in found])
    else:
        for v in found:
            tags = f"  [{', '.join(v.tags)}]" if v.tags else ""
            print(f"{v.name}  {json.dumps(v.value)}{tags}")
    return 0


def get_variable(args: argparse.Namespace) -> int:
    from ..api.block_client import block_client

    with block_client() as client:
        found = client.get_variable(args.name)
    if found is None:
        raise ValueError(f"no variable {args.name!r}; `headwater variable ls` lists them")
    print_json(_shape(found)) if args.json else print(json.dumps(found.value))
    return 0


def set_variable(args: argparse.Namespace) -> int:
    from ..api.block_client import block_client

    with block_client() as client:
        info = client.set_variable(args.name, _value(args.value), overwrite=args.overwrite, tags=args.tag)
    print_json(_shape(info)) if args.json else print(f"variable {info.name!r} set to {json.dumps(info.value)}")
    return 0


def unset_variable(args: argparse.Namespace) -> int:
    from ..api.block_client import block_client

    with block_client() as client:
        removed = client.unset_variable(args.name)
    if not removed:
        raise ValueError(f"no variable {args.name!r} to unset")
    print_json({"name": args.name, "unset": True}) if args.json else print(f"variable {args.name!r} unset")
    return 0
