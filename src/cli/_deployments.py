"""`headwater deploy ENTRYPOINT --name NAME ...` and `headwater deployment ls | inspect | run |
pause | resume | delete`: register a flow as a deployment, and manage and run deployments.
`deployment schedule ...` (its schedules) is in `_schedules`.

`deploy` loads the flow from its entrypoint (`path/file.py:fn`, relative to the current
directory, or `pkg.mod:fn`) in this process, so its parameter schema and source are read
from the code itself, then registers it with the state service (creating it, or updating it
in place: same id, same runs). `deployment run` creates a run SCHEDULED for a worker of the
deployment's pool (or the `serve` process that registered it); the service checks its
parameters against the deployment's schema, and refuses a bad one naming the field.

Calls go to the server at `HEADWATER_API_URL`, or on the embedded default to this process's
own service on `HEADWATER_HOME` (`deploy.connection`). `--json` prints one JSON document on
stdout. Handlers import what they need when they run.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import _schedules
from ._deploy_common import PARAM_HELP, deployment_json, guarded, key_value, print_json

#: The state a watched run must end in for `deployment run --watch` to exit 0.
_SUCCESS = "COMPLETED"
_NAME_HELP = "FLOW/NAME, or the deployment's id"


def register(subparsers: Any) -> None:
    _register_deploy(subparsers)
    _register_deployment(subparsers)


def _register_deploy(subparsers: Any) -> None:
    deploy = subparsers.add_parser("deploy", help="register a flow as a deployment (create or update it)")
    deploy.add_argument("entrypoint", metavar="ENTRYPOINT",
                        help="path/file.py:flow_fn (relative to the current directory) or pkg.mod:flow_fn")
    deploy.add_argument("--name", required=True, help="the deployment's name; its full name is FLOW/NAME")
    deploy.add_argument("--pool", metavar="POOL", help="the work pool whose workers run it (it must exist)")
    deploy.add_argument("--param", action="append", type=key_value, default=[], metavar="K=V",
                        help=f"a default parameter of its runs, {PARAM_HELP}")
    deploy.add_argument("--tag", action="append", default=[], metavar="T", help="a tag of its runs (repeat)")
    deploy.add_argument("--description", metavar="D", help="default: the flow's")
    deploy.add_argument("--version", metavar="V", help="default: the flow's")
    deploy.add_argument("--concurrency-limit", type=int, metavar="N", help="most runs of it at once")
    deploy.add_argument("--collision-strategy", choices=("enqueue", "cancel_new"), default="enqueue",
                        help="at the limit, queue a new run (enqueue) or cancel it (cancel_new)")
    deploy.add_argument("--json", action="store_true", help="print JSON")
    deploy.set_defaults(handler=guarded("deploy", deploy_flow))


def _register_deployment(subparsers: Any) -> None:
    deployment = subparsers.add_parser("deployment", help="list, inspect, run, pause and delete deployments")
    verbs = deployment.add_subparsers(dest="verb", metavar="VERB")
    ls = verbs.add_parser("ls", help="every deployment")
    ls.add_argument("--pool", metavar="P", help="only the deployments of this work pool")
    ls.set_defaults(handler=guarded("deployment", list_deployments))
    run = verbs.add_parser("run", help="create a run of a deployment (SCHEDULED, for a worker)")
    run.add_argument("name", metavar="NAME", help=_NAME_HELP)
    run.add_argument("-p", "--param", action="append", type=key_value, default=[], metavar="K=V",
                     help=f"a parameter of the run, {PARAM_HELP}")
    run.add_argument("--key", metavar="IDEMPOTENCY_KEY",
                     help="a second run with the same key returns the first instead of creating one")
    run.add_argument("--watch", action="store_true",
                     help="wait for the run's end; exit 1 unless it ends COMPLETED")
    run.add_argument("--timeout", type=float, metavar="S", help="with --watch: wait at most S seconds")
    run.set_defaults(handler=guarded("deployment", run_deployment))
    named = {
        "inspect": ("every field of one deployment", inspect_deployment),
        "pause": ("mark it paused (its paused flag)", pause_deployment),
        "resume": ("clear its paused flag", resume_deployment),
        "delete": ("delete it, cancelling its queued runs", delete_deployment),
    }
    parsers = [ls, run]
    for verb, (help_text, handler) in named.items():
        parser = verbs.add_parser(verb, help=help_text)
        parser.add_argument("name", metavar="NAME", help=_NAME_HELP)
        parser.set_defaults(handler=guarded("deployment", handler))
        parsers.append(parser)
    for parser in parsers:
        parser.add_argument("--json", action="store_true", help="print JSON")
    _schedules.register(verbs)
    deployment.set_defaults(handler=lambda args: deployment.print_help() or 2)


# -- deploy ----------------------------------------------------------------------------------


def deploy_flow(args: argparse.Namespace) -> int:
    from ..deploy.deployments import deploy, to_deployment
    from ..deploy.entrypoints import load_flow

    flow = load_flow(args.entrypoint)
    pending = to_deployment(
        flow, args.name, parameters=dict(args.param), tags=args.tag, description=args.description,
        version=args.version, work_pool_name=args.pool, concurrency_limit=args.concurrency_limit,
        collision_strategy=args.collision_strategy,
    )
    # `deploy` insists on a pool; without one the deployment is for a `serve` process.
    dep = deploy(pending)[0] if args.pool else pending.apply()
    if args.json:
        print_json(deployment_json(dep))
        return 0
    done = "created" if dep.created == dep.updated else "updated"
    print(f"Deployment {dep.name!r} ({dep.id}) {done}; run it with: headwater deployment run {dep.name}")
    return 0


# -- deployment ------------------------------------------------------------------------------


def list_deployments(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..deploy.connection import deploy_client
    from ._text import console, inert

    with deploy_client() as client:
        found = client.list_deployments(work_pool=args.pool)
    if args.json:
        print_json([deployment_json(d) for d in found])
        return 0
    table = Table(title=f"deployments ({len(found)})")
    for column in ("name", "id", "pool", "paused", "limit", "entrypoint"):
        table.add_column(column)
    for d in found:
        limit = "-" if d.concurrency_limit is None else str(d.concurrency_limit)
        table.add_row(inert(d.name), str(d.id), inert(d.work_pool or "(serve)"), "yes" if d.paused else "no",
                      limit, inert(d.entrypoint))
    console().print(table)
    return 0


def inspect_deployment(args: argparse.Namespace) -> int:
    import json

    from ..deploy.connection import deploy_client
    from ._text import console, inert

    with deploy_client() as client:
        shaped = deployment_json(client.read_deployment(args.name))
    if args.json:
        print_json(shaped)
        return 0
    out = console(soft_wrap=True)
    for key, value in shaped.items():
        if key == "parameter_schema":
            continue  # its parameter names are shown; --json has it whole
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        out.print(inert(f"{key}: {text}"))
    return 0


def run_deployment(args: argparse.Namespace) -> int:
    from ..deploy.run import run_deployment as create_and_wait

    if args.timeout is not None and not args.watch:
        raise ValueError("--timeout says how long --watch waits; add --watch")
    # Without --watch, 0 returns the run as created; with it, None waits for its end.
    timeout = args.timeout if args.watch else 0
    run = create_and_wait(args.name, parameters=dict(args.param) or None, timeout=timeout,
                          idempotency_key=args.key)
    if args.json:
        print_json({"id": str(run.id), "name": run.name, "flow_name": run.flow_name,
                    "state_type": run.state_type, "state_name": run.state_name, "parameters": run.parameters})
    elif args.watch:
        print(f"flow run {run.name!r} ({run.id}): {run.state_type} ({run.state_name})")
    else:
        print(f"flow run {run.name!r} ({run.id}) created: {run.state_type}; "
              f"follow it with: headwater runs logs -f {run.id}")
    return 0 if not args.watch or run.state_type == _SUCCESS else 1


def pause_deployment(args: argparse.Namespace) -> int:
    return _set_paused(args, True)


def resume_deployment(args: argparse.Namespace) -> int:
    return _set_paused(args, False)


def delete_deployment(args: argparse.Namespace) -> int:
    from ..deploy.connection import deploy_client

    with deploy_client() as client:
        dep = client.read_deployment(args.name)
        cancelled = client.delete_deployment(dep.id)
    if args.json:
        print_json({"deleted": dep.name, "id": str(dep.id), "cancelled_runs": [str(r) for r in cancelled]})
    else:
        print(f"deployment {dep.name!r} deleted; {len(cancelled)} queued run(s) cancelled")
    return 0


def _set_paused(args: argparse.Namespace, paused: bool) -> int:
    from ..deploy.connection import deploy_client

    with deploy_client() as client:
        dep = client.pause_deployment(args.name, paused)
    if args.json:
        print_json(deployment_json(dep))
    else:
        print(f"deployment {dep.name!r} {'paused' if paused else 'resumed'}")
    return 0
