"""`headwater automation create -f FILE | ls | inspect | pause | resume | delete`: triggers and
actions kept by the state service (`api/automation_store.py`), all with `--json`. A file is
YAML (or JSON): `name`, `description`, `trigger` (EventTrigger's fields), `actions` (a list of
`{type: ..., ...}`). Registering imports only the standard library (`tests/cli/test_startup.py`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._deploy_common import guarded, print_json


def register(subparsers: Any) -> None:
    automations = subparsers.add_parser("automation", help="triggers over events, and the actions they take")
    verbs = automations.add_subparsers(dest="verb", metavar="VERB")
    create = verbs.add_parser("create", help="create automations from a YAML or JSON file")
    create.add_argument("-f", "--file", required=True, metavar="FILE", help="one automation, or a list of them")
    create.add_argument("--dry-run", action="store_true",
                        help="create nothing: replay each trigger over the stored events of the last --hours")
    create.add_argument("--hours", type=float, default=24.0, metavar="H", help="how far back a dry run replays (24)")
    ls = verbs.add_parser("ls", help="every automation")
    handlers: list[tuple[argparse.ArgumentParser, Any]] = [(create, create_automations), (ls, list_automations)]
    for verb, help_text, handler in (
        ("inspect", "one automation and its latest firings", inspect_automation),
        ("explain", "why it fired or did not: open windows per bucket, last firings and their events", explain_automation),
        ("pause", "stop evaluating it (events meanwhile are not counted later)", pause_automation),
        ("resume", "evaluate it again", resume_automation),
        ("delete", "delete it", delete_automation),
    ):
        parser = verbs.add_parser(verb, help=help_text)
        parser.add_argument("name", metavar="NAME")
        handlers.append((parser, handler))
    for parser, handler in handlers:
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=guarded("automation", handler))
    automations.set_defaults(handler=lambda args: automations.print_help() or 2)


def _client() -> Any:
    from ..api.automation_client import AutomationClient
    from ..deploy.connection import service_target

    return AutomationClient(service_target())


def _shape(auto: Any) -> dict[str, Any]:
    from ._run_shapes import iso

    return {"name": auto.name, "id": str(auto.id), "description": auto.description, "enabled": auto.enabled,
            "trigger": auto.trigger, "actions": auto.actions, "created": iso(auto.created)}  # fmt: skip


def create_automations(args: argparse.Namespace) -> int:
    import yaml

    from ..api.compound_triggers import trigger_from_dict

    with open(args.file, encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle)
    items = loaded if isinstance(loaded, list) else [loaded]
    made = []
    with _client() as client:
        for item in items:
            if not isinstance(item, dict) or "name" not in item or "trigger" not in item:
                raise ValueError(f"{args.file}: an automation is a mapping with name, trigger and actions")
            trigger = trigger_from_dict(item["trigger"]).to_dict()  # refuses unknown fields, naming them
            if args.dry_run:
                _print_dry_run(item["name"], client.dry_run(trigger, time.time() - args.hours * 3600), args)
                continue
            made.append(client.create(item["name"], trigger, list(item.get("actions") or []),
                                      description=item.get("description"), enabled=item.get("enabled", True)))  # fmt: skip
    if args.dry_run:
        return 0
    if args.json:
        print_json([_shape(a) for a in made])
    else:
        for auto in made:
            print(f"automation {auto.name!r} created ({auto.id})")
    return 0


def _print_dry_run(name: str, report: dict[str, Any], args: argparse.Namespace) -> None:
    from ._run_shapes import iso

    firings = [o for o in report["outcomes"] if o["kind"] == "firing"]
    if args.json:
        print_json({"name": name, "hours": args.hours, **report})
        return
    print(f"{name}: {len(firings)} firing(s) over the last {args.hours:g} h ({report['events_read']} events read)")
    for outcome in report["outcomes"]:
        print(f"  {iso(outcome['window_end'])}  {outcome['kind']}  {outcome['reason']}")


def list_automations(args: argparse.Namespace) -> int:
    with _client() as client:
        found = client.all()
    if args.json:
        print_json([_shape(a) for a in found])
    else:
        for auto in found:
            kinds = ", ".join(a.get("type", "?") for a in auto.actions)
            print(f"{auto.name}  {'enabled' if auto.enabled else 'paused'}  -> {kinds}")
    return 0


def inspect_automation(args: argparse.Namespace) -> int:
    from ._run_shapes import iso

    with _client() as client:
        auto = client.read(args.name)
        firings = client.firings(args.name)
    shape = _shape(auto)
    shape["firings"] = [{"key": f.key, "kind": f.kind, "created": iso(f.created), "actions_done": f.next_action,
                         "finished": iso(f.finished) if f.finished else None, "error": f.error,
                         "window": [f.body.get("window_start"), f.body.get("window_end")]} for f in firings]  # fmt: skip
    if args.json:
        print_json(shape)
    else:
        print(f"{auto.name}  ({'enabled' if auto.enabled else 'paused'})  trigger: {auto.trigger}")
        for action in auto.actions:
            print(f"  action: {action}")
        for f in shape["firings"]:
            print(f"  {f['created']}  {f['kind']}  actions done: {f['actions_done']}  {f['error'] or ''}")
    return 0


def explain_automation(args: argparse.Namespace) -> int:
    from ._run_shapes import iso

    with _client() as client:
        report = client.explain(args.name)
    if args.json:
        print_json(report)
        return 0
    expect = ", ".join(report["expect"]) or "any event"
    print(f"{report['name']} ({'enabled' if report['enabled'] else 'paused'}): {report['posture']}, "
          f"{report['threshold']} of [{expect}] within {report['within']:g} s")  # fmt: skip
    if not report["buckets"]:
        print("  no open window: no matching event counted since the last firing (or ever)")
    for b in report["buckets"]:
        if b["waiting_for_after_event"]:
            print(f"  {b['bucket']}: waiting for an 'after' event to open a window")
            continue
        start = iso(b["window_start"]) if b["window_start"] else "-"
        print(f"  {b['bucket']}: {b['counted']} of {b['threshold']} counted, window from {start}; "
              + ("not enough yet: no firing" if b["counted"] < b["threshold"] else "threshold reached"))
    for f in report["firings"]:
        events = ", ".join(f["events"]) or "no event (a missed window)"
        print(f"  fired {iso(f['created'])}: {f['reason']} [{events}]"
              + (f"; error: {f['error']}" if f["error"] else ""))  # fmt: skip
    return 0


def _set(args: argparse.Namespace, enabled: bool) -> int:
    with _client() as client:
        auto = client.set_enabled(args.name, enabled)
    print_json(_shape(auto)) if args.json else print(f"automation {auto.name!r} {'resumed' if enabled else 'paused'}")
    return 0


def pause_automation(args: argparse.Namespace) -> int:
    return _set(args, False)


def resume_automation(args: argparse.Namespace) -> int:
    return _set(args, True)


def delete_automation(args: argparse.Namespace) -> int:
    with _client() as client:
        client.delete(args.name)
    print_json({"deleted": args.name}) if args.json else print(f"automation {args.name!r} deleted")
    return 0
