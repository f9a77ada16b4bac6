"""`headwater block ls | inspect | delete | types | check | update`: block documents kept in
the state service, all with `--json`. A block is named `TYPE/NAME` (`secret/db-password`).

Nothing here decrypts: listings show secret fields as `********` and references as the
block they name. `update --set field=value` loads the block with its class (built-ins, or
a class from `--module`), sets the field (a secret field is encrypted again as it is saved)
and saves it in place, so every later load, and every block referring to it, sees the new
value. `check` validates every stored document against the classes importable here.
Registering imports only the standard library (`tests/cli/test_startup.py`).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from ._deploy_common import guarded, key_value, print_json

MASK = "********"


def register(subparsers: Any) -> None:
    blocks = subparsers.add_parser("block", help="typed configuration and credentials (Block.save / .load)")
    verbs = blocks.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("ls", help="every block document (secrets masked)")
    ls.add_argument("--type", metavar="SLUG", help="only blocks of this type")
    inspect = verbs.add_parser("inspect", help="one block's fields (secrets masked)")
    inspect.add_argument("name", metavar="TYPE/NAME")
    delete = verbs.add_parser("delete", help="delete a block document")
    delete.add_argument("name", metavar="TYPE/NAME")
    types = verbs.add_parser("types", help="the block types saved so far, with their fields")
    check = verbs.add_parser("check", help="validate every stored document against the current classes")
    update = verbs.add_parser("update", help="change fields of a block in place (rotate a secret)")
    update.add_argument("name", metavar="TYPE/NAME")
    update.add_argument("--set", dest="values", action="append", type=key_value, required=True, metavar="FIELD=VALUE",
                        help="a field's new value (repeat); JSON when it parses, else text")  # fmt: skip
    for parser in (check, update):
        parser.add_argument("--module", action="append", default=[], metavar="MODULE",
                            help="import this module first, for block classes of your own (repeat)")  # fmt: skip
    handlers = ((ls, list_blocks), (inspect, inspect_block), (delete, delete_block), (types, list_types),
                (check, check_blocks), (update, update_block))  # fmt: skip
    for parser, handler in handlers:
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=guarded("block", handler))
    blocks.set_defaults(handler=lambda args: blocks.print_help() or 2)


def _split(name: str) -> tuple[str, str]:
    slug, sep, rest = name.partition("/")
    if not sep or not slug or not rest:
        raise ValueError(f"a block is named TYPE/NAME (e.g. secret/db-password), not {name!r}")
    return slug, rest


def masked(value: Any) -> Any:
    """A stored document as people may see it: secrets masked, references named."""
    if isinstance(value, dict):
        if "$secret" in value:
            return MASK
        if "$ref" in value and isinstance(value["$ref"], dict):
            return {"$ref": f"{value['$ref'].get('type')}/{value['$ref'].get('name')}"}
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def _shape(doc: Any) -> dict[str, Any]:
    from ._run_shapes import iso

    return {"type": doc.type_slug, "name": doc.name, "id": str(doc.id), "data": masked(doc.data),
            "type_version": doc.type_version, "created": iso(doc.created), "updated": iso(doc.updated)}  # fmt: skip


def list_blocks(args: argparse.Namespace) -> int:
    from ..api.block_client import block_client

    with block_client() as client:
        docs = client.list_blocks(args.type)
    if args.json:
        print_json([_shape(d) for d in docs])
    else:
        for doc in docs:
            print(f"{doc.type_slug}/{doc.name}  fields: {', '.join(sorted(doc.data)) or '-'}")
    return 0


def inspect_block(args: argparse.Namespace) -> int:
    from ..api.block_client import block_client

    with block_client() as client:
        doc = client.read_block(*_split(args.name))
    shape = _shape(doc)
    if args.json:
        print_json(shape)
    else:
        print(f"{shape['type']}/{shape['name']}  (id {shape['id']}, updated {shape['updated']})")
        for field, value in shape["data"].items():
            print(f"  {field}: {value}")
    return 0


def delete_block(args: argparse.Namespace) -> int:
    from ..api.block_client import block_client

    slug, name = _split(args.name)
    with block_client() as client:
        client.delete_block(slug, name)
    print_json({"deleted": args.name}) if args.json else print(f"block {args.name} deleted")
    return 0


def list_types(args: argparse.Namespace) -> int:
    from ..api.block_client import block_client

    with block_client() as client:
        found = client.list_types()
    shapes: list[dict[str, Any]] = [
        {"slug": t.slug, "version": t.version,
         "fields": {name: ("secret" if spec.get("secret") else spec.get("type", "any"))
                    for name, spec in (t.schema.get("properties") or {}).items()}}
        for t in found
    ]  # fmt: skip
    if args.json:
        print_json(shapes)
    else:
        for shape in shapes:
            fields = ", ".join(f"{k} ({v})" for k, v in shape["fields"].items())
            print(f"{shape['slug']} v{shape['version']}: {fields}")
    return 0


def _import_classes(modules: list[str]) -> None:
    importlib.import_module("headwater.blocks")  # the built-in types
    for module in modules:
        importlib.import_module(module)


def check_blocks(args: argparse.Namespace) -> int:
    _import_classes(args.module)
    from ..blocks import check_documents

    problems = check_documents()
    if args.json:
        print_json([{"block": f"{p.type_slug}/{p.name}", "message": p.message, "details": list(p.details)} for p in problems])
    else:
        for problem in problems:
            print(problem)
            for line in problem.details:
                print(f"    {line}")
        print(f"{len(problems)} block(s) would not load" if problems else "every stored block loads")
    return 1 if problems else 0


def update_block(args: argparse.Namespace) -> int:
    _import_classes(args.module)
    from ..blocks.core import block_class

    slug, name = _split(args.name)
    cls = block_class(slug)
    if cls is None:
        raise ValueError(f"no class for block type {slug!r} is imported; pass --module with the module that defines it")
    current = cls.load(name)
    changes = dict(args.values)
    unknown = sorted(set(changes) - set(cls.model_fields))
    if unknown:
        raise ValueError(f"block type {slug!r} has no field {', '.join(unknown)} (its fields: {', '.join(cls.model_fields)})")
    fields = {field: getattr(current, field) for field in cls.model_fields}
    updated = cls.model_validate({**fields, **changes})
    updated.save(name, overwrite=True)
    if args.json:
        print_json({"updated": args.name, "fields": sorted(changes)})
    else:
        print(f"block {args.name} updated: {', '.join(sorted(changes))}")
    return 0
