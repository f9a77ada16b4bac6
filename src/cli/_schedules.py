"""`headwater deployment schedule create | ls | pause | resume | delete | preview`: the
schedules of one deployment (issue #16), on which the state service's scheduler makes runs.

`create` builds the schedule here (`Cron`, `Interval` or `RRule`), so a bad expression, zone
or policy is refused before any call, naming what is wrong; adding a schedule whose content
(when and with what it runs) the deployment has live already updates that one instead. `ls`
and `preview` show ticks as the scheduler computes them, DST changes marked. `pause`,
`resume` and `delete` take the deployment too, and refuse an id that is not one of its live
schedules: the service would act on any id, and a typo must not pause another deployment's.

Registering imports the standard library only: `headwater.api.schedules` loads croniter and
dateutil, so handlers import it when they run (`tests/cli/test_startup.py`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._deploy_common import PARAM_HELP, guarded, key_value, print_json

if TYPE_CHECKING:
    from ..api.deploy_client import DeployClient
    from ..api.schedule_runs import ScheduleInfo
    from ..api.schedules import Schedule, Tick

# `headwater.api.schedules.OVERLAP_POLICIES` and `CATCHUP_POLICIES`, restated so that argparse
# can list them without loading croniter; tests/cli/test_schedules_cli.py pins them equal.
OVERLAP = ("skip", "buffer_one", "allow_all", "cancel_other")
CATCHUP = ("all", "latest", "skip")
_NOUN = "deployment"
_NAME_HELP = "FLOW/NAME, or the deployment's id"
#: Ticks `create` shows: enough to see the rhythm (and the zone) without scrolling.
_CREATE_PREVIEW = 3


def register(verbs: Any) -> None:
    """`schedule` and its verbs, under the `deployment` noun's `verbs`."""
    schedule = verbs.add_parser("schedule", help="add, list, pause, resume, delete and preview its schedules")
    sub = schedule.add_subparsers(dest="schedule_verb", metavar="VERB")
    _register_create(sub)
    _verb(sub, "ls", "its live schedules, with their policies and next tick", list_schedules)
    for verb, help_text, handler in (("pause", "stop making runs from one schedule", pause_schedule),
                                     ("resume", "make runs from a paused schedule again", resume_schedule),
                                     ("delete", "retire a schedule, superseding its waiting runs", delete_schedule)):
        _verb(sub, verb, help_text, handler).add_argument("id", metavar="ID", type=int, help="the schedule's id (ls)")
    preview = _verb(sub, "preview", "the next ticks of its active schedules", preview_schedules)
    preview.add_argument("--count", type=int, default=10, metavar="N", help="ticks per schedule (default 10)")
    preview.add_argument("--id", type=int, metavar="ID", help="only this schedule (active or not)")
    schedule.set_defaults(handler=lambda args: schedule.print_help() or 2)


def _verb(sub: Any, verb: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> Any:
    """A verb taking the deployment's NAME and --json, whose refusals are one line on stderr."""
    parser = sub.add_parser(verb, help=help_text)
    parser.add_argument("name", metavar="NAME", help=_NAME_HELP)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=guarded(_NOUN, handler))
    return parser


def _register_create(sub: Any) -> None:
    create = _verb(sub, "create", "add a schedule (cron, interval or rrule) to a deployment", create_schedule)
    when = create.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help="five cron fields, e.g. '30 2 * * *' (02:30 daily)")
    when.add_argument("--interval", metavar="SPAN", help="every SPAN: seconds ('900') or d/h/m/s ('15m', '1h30m')")
    when.add_argument("--rrule", metavar="RULE", help="an RFC 5545 rule, e.g. 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9'")
    create.add_argument("--timezone", default="UTC", metavar="ZONE",
                        help="IANA zone whose wall-clock time the schedule follows (default UTC)")
    create.add_argument("--anchor", metavar="ISO", help="with --interval: a tick time fixing its phase "
                        "(a time without offset is read in --timezone)")
    create.add_argument("--slug", metavar="S", help="a name for the schedule")
    create.add_argument("--param", action="append", type=key_value, default=[], metavar="K=V",
                        help=f"a parameter of its runs, over the deployment's; {PARAM_HELP}")
    create.add_argument("--overlap", choices=OVERLAP, default="skip",
                        help="when a tick is due while a run is still going (default skip)")
    create.add_argument("--catchup", choices=CATCHUP, default="latest",
                        help="which ticks missed while nothing ran become runs (default latest)")
    create.add_argument("--max-lateness", metavar="SPAN", help="catch up no tick older than SPAN ('1h')")
    create.add_argument("--inactive", action="store_true", help="add it paused")


# -- handlers --------------------------------------------------------------------------------


def create_schedule(args: argparse.Namespace) -> int:
    from ..api.schedules import preview
    from ..deploy.connection import deploy_client

    schedule = _build(args)
    with deploy_client() as client:
        info = client.add_schedule(args.name, schedule.to_dict())
    coming = preview(schedule, count=_CREATE_PREVIEW)
    if args.json:
        print_json({**schedule_json(info), "next_ticks": [tick_json(info.id, t) for t in coming]})
        return 0
    state = "active" if info.active else "inactive: no runs until `resume`"
    print(f"schedule {info.id} of deployment {args.name!r}: {info.spec['kind']} {_when(info.spec)!r} ({state}); "
          "next ticks:")
    for tick in coming:
        print(f"  {local_text(tick.local)}  =  {tick.utc:%Y-%m-%d %H:%M:%S} UTC"
              + (f"  * {tick.dst_change}" if tick.dst_change else ""))
    return 0


def list_schedules(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..deploy.connection import deploy_client
    from ._text import console, inert

    with deploy_client() as client:
        shaped = [schedule_json(info) for info in client.list_schedules(args.name)]
    if args.json:
        print_json(shaped)
        return 0
    table = Table(title=inert(f"schedules of {args.name} ({len(shaped)})"))
    for column in ("id", "slug", "kind", "when", "timezone", "active", "overlap", "catchup", "max lateness", "next"):
        table.add_column(column)
    for s in shaped:
        lateness = "-" if s["max_lateness"] is None else span_text(s["max_lateness"])
        table.add_row(str(s["id"]), inert(s["slug"] or "-"), s["kind"], inert(_when(s["spec"])), inert(s["timezone"]),
                      "yes" if s["active"] else "no", s["overlap"], s["catchup"], lateness, s["next_local"] or "-")
    console().print(table)
    return 0


def pause_schedule(args: argparse.Namespace) -> int:
    return _set_active(args, False)


def resume_schedule(args: argparse.Namespace) -> int:
    return _set_active(args, True)


def delete_schedule(args: argparse.Namespace) -> int:
    from ..deploy.connection import deploy_client

    with deploy_client() as client:
        _owned(client, args.name, args.id)
        superseded = client.delete_schedule(args.id)
    if args.json:
        print_json({"deleted": args.id, "deployment": args.name, "superseded_runs": superseded})
    else:
        print(f"schedule {args.id} of deployment {args.name!r} deleted; {superseded} waiting run(s) superseded")
    return 0


def preview_schedules(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..api.schedules import preview, schedule_from_dict
    from ..deploy.connection import deploy_client
    from ._text import console, inert

    if args.count < 1:
        raise ValueError(f"--count {args.count} must be at least 1")
    with deploy_client() as client:
        if args.id is not None:
            chosen = [_owned(client, args.name, args.id)]
        else:
            chosen = [info for info in client.list_schedules(args.name) if info.active]
    ticks = {info.id: preview(schedule_from_dict(info.spec), count=args.count) for info in chosen}
    if args.json:
        print_json([tick_json(sid, tick) for sid, shown in ticks.items() for tick in shown])
        return 0
    if not chosen:
        print(f"deployment {args.name!r} has no active schedule")
        return 0
    out = console()
    for info in chosen:
        title = f"schedule {info.id}: {info.spec['kind']} {_when(info.spec)} ({info.spec.get('timezone')})"
        table = Table(title=inert(title))  # a name or rule is text, never rich markup
        for column in ("local", "UTC", "DST"):
            table.add_column(column)
        for tick in ticks[info.id]:
            mark = f"* {tick.dst_change}" if tick.dst_change else ""
            table.add_row(local_text(tick.local), f"{tick.utc:%Y-%m-%d %H:%M:%S}", mark)
        out.print(table)
    return 0


# -- shared ----------------------------------------------------------------------------------


def _build(args: argparse.Namespace) -> Schedule:
    """The schedule `create`'s flags describe; `ValueError`, naming the culprit, for a bad one."""
    from ..api.schedules import Cron, Interval, RRule, parse_interval

    if args.anchor is not None and args.interval is None:
        raise ValueError("--anchor fixes the phase of an --interval schedule; cron and rrule have none")
    common: dict[str, Any] = {
        "active": not args.inactive, "parameters": dict(args.param), "slug": args.slug, "overlap": args.overlap,
        "catchup": args.catchup,
        "max_lateness": None if args.max_lateness is None else parse_interval(args.max_lateness),
    }
    if args.cron is not None:
        return Cron(args.cron, args.timezone, **common)
    if args.rrule is not None:
        return RRule(args.rrule, args.timezone, **common)
    return Interval(parse_interval(args.interval), _anchor(args.anchor), args.timezone, **common)


def _anchor(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--anchor {text!r} is not an ISO 8601 time; e.g. 2026-01-01T09:00 or "
                         "2026-01-01T09:00+01:00") from None


def _owned(client: DeployClient, name: str, schedule_id: int) -> ScheduleInfo:
    """The live schedule `schedule_id` of deployment `name`, or `ValueError` naming the ones it has."""
    found = client.list_schedules(name)
    for info in found:
        if info.id == schedule_id:
            return info
    has = ", ".join(str(info.id) for info in found) or "none"
    raise ValueError(f"deployment {name!r} has no live schedule {schedule_id}; its schedules: {has}")


def _set_active(args: argparse.Namespace, active: bool) -> int:
    from ..deploy.connection import deploy_client

    with deploy_client() as client:
        _owned(client, args.name, args.id)
        client.set_schedule_active(args.id, active)
        info = _owned(client, args.name, args.id)
    if args.json:
        print_json(schedule_json(info))
    else:
        print(f"schedule {info.id} of deployment {args.name!r} {'resumed' if active else 'paused'}")
    return 0


def schedule_json(info: ScheduleInfo) -> dict[str, Any]:
    """A schedule as `--json` prints it: its spec flattened, and its next tick when active.
    `active` is the row's: pausing flips the row, not the spec it was added with."""
    from ..api.schedules import preview, schedule_from_dict
    from ._run_shapes import iso

    spec = info.spec
    coming = preview(schedule_from_dict(spec), count=1) if info.active else []
    return {
        "id": info.id, "deployment_id": str(info.deployment_id), "slug": info.slug, "kind": spec["kind"],
        "timezone": spec.get("timezone", "UTC"), "active": info.active, "overlap": spec.get("overlap", "skip"),
        "catchup": spec.get("catchup", "latest"), "max_lateness": spec.get("max_lateness"),
        "parameters": spec.get("parameters") or {}, "next": coming[0].utc.isoformat() if coming else None,
        "next_local": local_text(coming[0].local) if coming else None, "content_key": info.content_key,
        "created": iso(info.created), "spec": spec,
    }


def tick_json(schedule_id: int, tick: Tick) -> dict[str, Any]:
    return {"schedule_id": schedule_id, "utc": tick.utc.isoformat(), "local": tick.local.isoformat(),
            "dst_change": tick.dst_change}


def local_text(moment: datetime) -> str:
    """'2027-03-28 03:00:00 CEST (+02:00)': the zone's abbreviation alone is ambiguous (IST)."""
    offset = moment.utcoffset()
    minutes = 0 if offset is None else int(offset.total_seconds()) // 60
    hours, rest = divmod(abs(minutes), 60)
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.tzname()} ({'-' if minutes < 0 else '+'}{hours:02d}:{rest:02d})"


def _when(spec: dict[str, Any]) -> str:
    """What the schedule follows: its cron or rrule text, or 'every 15m'."""
    if spec["kind"] == "interval":
        return f"every {span_text(spec['interval'])}"
    return str(spec.get(spec["kind"]))


def span_text(seconds: float) -> str:
    """'1h30m', '2d', '45s': the form --interval and --max-lateness read."""
    whole = int(seconds)
    parts = ((whole // 86400, "d"), (whole % 86400 // 3600, "h"), (whole % 3600 // 60, "m"), (whole % 60, "s"))
    return "".join(f"{amount}{unit}" for amount, unit in parts if amount) or f"{seconds:g}s"
