"""`headwater runs resume ID [--input JSON | --set field=value ...] [--by NAME]`, `headwater
runs reject ID [--reason TEXT] [--by NAME]`, and what `runs show` says about a paused run: the
input it waits for and the command that resumes it.

The input is validated by the state service at the resume call (`api/pause_store.py`), not
here: this verb only builds it. `--input` is JSON (an object of fields, or a builtin's bare
value: `--input 5`, `--input '"text"'`). `--set field=value` takes a field's value as JSON
when the field is not a string in the pause's schema (`--set approved=true`, `--set n=3`),
and as given when it is (`--set note=ok`), so nobody has to quote strings twice.
Exit status: 0 once resumed (or rejected: the run ends FAILED, "rejected by NAME: REASON", and
the flow's paused call raises `PauseRejected`), 1 when refused (invalid input, with each
field's error; a run that is not paused; an unknown id).
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.text import Text

from ._text import inert


def resume_run(args: argparse.Namespace) -> int:
    from ..api.pause_direct import read_pause_here_or_there, resume_here_or_there
    from ._cancel import _user
    from ._source import open_source

    with open_source() as source:
        run_id = source.read_flow_run(args.id).id
    run_input: Any = None
    if args.input is not None:
        try:
            run_input = json.loads(args.input)
        except ValueError:
            raise ValueError(
                f"--input takes JSON, not {args.input!r}: quote a string as '\"text\"', or use --set field=value"
            ) from None
    if args.set:
        pause = read_pause_here_or_there(run_id)
        schema = pause.input_schema if pause is not None and pause.input_schema else {}
        fields = dict(run_input) if isinstance(run_input, dict) else {}
        fields.update(_set_fields(args.set, schema))
        run_input = fields
    done = resume_here_or_there(run_id, run_input, by=args.by or _user())
    given = "" if done.run_input is None else f" with input {json.dumps(done.run_input, sort_keys=True)}"
    print(f"flow run {done.flow_run_id}: resumed by {done.by}{given} (pause {done.key!r})")
    return 0


def reject_run(args: argparse.Namespace) -> int:
    from ..api.pause_direct import reject_here_or_there
    from ._cancel import _user
    from ._source import open_source

    with open_source() as source:
        run_id = source.read_flow_run(args.id).id
    done = reject_here_or_there(run_id, args.reason, by=args.by or _user())
    print(f"flow run {done.flow_run_id}: {done.message} (pause {done.key!r}); the run is FAILED")
    return 0


def _set_fields(pairs: list[str], schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties", {})
    fields: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--set takes field=value, not {pair!r}")
        if _is_string(properties.get(name, {})):
            fields[name] = raw
            continue
        try:
            fields[name] = json.loads(raw)
        except ValueError:
            fields[name] = raw  # the service says what it should have been
    return fields


def _is_string(prop: dict[str, Any]) -> bool:
    if prop.get("type") == "string":
        return True
    kinds = {p.get("type") for p in prop.get("anyOf", [])} - {"null"}
    return kinds == {"string"}


# -- runs show -------------------------------------------------------------------------------


def pause_json(run_id: UUID) -> dict[str, Any] | None:
    """The open pause of a paused run, for `runs show`: its key, deadline, schema, and the
    command that resumes it."""
    from datetime import datetime, timezone

    from ..api.pause_direct import read_pause_here_or_there

    pause = read_pause_here_or_there(run_id)
    if pause is None or pause.outcome is not None:
        return None
    schema = pause.input_schema
    return {
        "key": pause.key,
        "deadline": datetime.fromtimestamp(pause.deadline, tz=timezone.utc).isoformat(),
        "input_schema": schema,
        "resume_command": resume_command(str(run_id), schema),
    }


def resume_command(run_id: str, schema: dict[str, Any] | None) -> str:
    if not schema:
        return f"headwater runs resume {run_id}"
    properties = schema.get("properties", {})
    if schema.get("x-headwater-value"):
        return f"headwater runs resume {run_id} --input <{_type_name(properties.get('value', {}))}>"
    required = schema.get("required", [])
    sets = " ".join(f"--set {name}=<{_type_name(properties[name])}>" for name in required if name in properties)
    return f"headwater runs resume {run_id} {sets}".rstrip()


def _type_name(prop: dict[str, Any]) -> str:
    if "type" in prop:
        return str(prop["type"])
    kinds = [str(p.get("type", "?")) for p in prop.get("anyOf", [])]
    return "|".join(kinds) if kinds else "value"


def print_pause(console: Console, pause: dict[str, Any]) -> None:
    console.print(Text(f"paused ({pause['key']}), waiting until {pause['deadline']}", style="magenta"))
    schema = pause["input_schema"]
    if schema:
        required = set(schema.get("required", []))
        console.print(Text(f"waiting for input {schema.get('title', '')}:"))
        for name, prop in schema.get("properties", {}).items():
            need = "required" if name in required else f"default {json.dumps(prop.get('default'))}"
            console.print(Text("  ") + inert(name) + Text(f": {_type_name(prop)} ({need})"))
    console.print(Text("resume with: ") + inert(pause["resume_command"]))
