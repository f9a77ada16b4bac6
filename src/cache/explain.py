"""Why a task run hit or missed the cache: the answer `headwater cache explain RUN_ID` prints.

`explain` is pure: it is given what the store knows (the run's note, the entry now under the
run's key, the task's other entries) and returns a plain dict, ready for `--json`; `render`
turns that dict into text. A miss is the case that needs explaining: a key is a hash, so two
keys that differ say nothing by themselves. Each key's components (what it was made of, name
to digest: "argument 'x'", "task source", ...) are kept with the run's note and with every
entry, so the entry of the same task sharing the most components with the run is the one the
user expected to hit, and the components where they differ are why it missed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .entries import Entry, RunNote

#: How long a store keeps run notes: `store.NOTE_LIFETIME`, in words.
NOTE_LIFETIME_TEXT = "30 days"
_SHORT = 12  # digest characters shown in text


def no_record(run_id: str) -> str:
    return (
        f"run {run_id} has no cache record: its task has no cache policy, or the run is older "
        f"than {NOTE_LIFETIME_TEXT}"
    )


def explain(run_id: str, note: RunNote | None, current: Entry | None, siblings: list[Entry]) -> dict[str, Any]:
    """What the cache did for run `run_id` and why. `note` is the run's note (None if the
    store has none), `current` the entry now under the note's key (None if there is none),
    `siblings` the entries of the same task now in the store (the key's own may be among
    them: it is left out of the comparison)."""
    if note is None:
        return {"run_id": run_id, "recorded": False, "summary": no_record(run_id)}
    entry = current if current is not None and note.key is not None and current.key == note.key else None
    result: dict[str, Any] = {
        "run_id": note.run_id, "recorded": True, "task": note.task, "outcome": note.outcome,
        "reason": note.reason or None, "at": note.created, "key": note.key,
        "components": dict(note.components), "entry": None if entry is None else _entry_info(entry),
        "nearest": None,
    }  # fmt: skip
    if note.outcome in ("miss", "unstored") and note.key is not None:
        others = [s for s in siblings if s.key != note.key and s.task == note.task]
        result["nearest"] = _nearest(note.components, others)
    result["summary"] = _summary(result)
    return result


def _entry_info(entry: Entry) -> dict[str, Any]:
    return {"key": entry.key, "created": entry.created, "expires": entry.expires, "size": entry.size}


def _common(a: Mapping[str, str], b: Mapping[str, str]) -> int:
    return sum(1 for name, digest in a.items() if b.get(name) == digest)


def _nearest(components: Mapping[str, str], others: list[Entry]) -> dict[str, Any] | None:
    """The entry sharing the most components with the run (the newest of equals), and the
    components where the two differ: changed, or present on one side only."""
    if not others:
        return None
    best = max(others, key=lambda e: (_common(components, e.components), e.created))
    names = sorted(set(components) | set(best.components))
    changes = {
        name: [components.get(name), best.components.get(name)]
        for name in names
        if components.get(name) != best.components.get(name)
    }
    return {
        **_entry_info(best), "common": _common(components, best.components),
        "differs": list(changes), "changes": changes,
    }


def _summary(result: dict[str, Any]) -> str:
    run, task, outcome = result["run_id"], result["task"], result["outcome"]
    head = f"run {run} of task {task!r}"
    if outcome == "hit":
        return f"{head} was served from the cache (a hit); it did not run its function."
    if outcome == "refresh":
        return f"{head} ran with refresh_cache=True: it computed its value and stored it over the entry."
    if outcome == "uncacheable":
        return f"{head} was not cached: it had no cache key ({result['reason'] or 'no reason recorded'})."
    if outcome not in ("miss", "unstored"):
        reason = f" ({result['reason']})" if result["reason"] else ""
        return f"{head}: the cache recorded {outcome!r}{reason}."
    if outcome == "miss":
        did = f"{head} missed: no entry was under its key, so it ran and stored its value."
    else:
        did = f"{head} missed and ran, but its value was not stored: {result['reason'] or 'no reason recorded'}."
    nearest = result["nearest"]
    if nearest is None:
        return (
            f"{did} No other entry of {task!r} is in the cache to compare with (this was its "
            "first cached run, or they were cleared, evicted or expired)."
        )
    if not nearest["differs"]:
        return (
            f"{did} The nearest entry of {task!r} has the same components: the keys differ in "
            "something the components do not show (the cache's version, or a custom policy)."
        )
    return f"{did} The nearest entry of {task!r} differs in: {', '.join(nearest['differs'])}."


# -- text ------------------------------------------------------------------------------------


def _when(ts: float | None, never: str = "never") -> str:
    if ts is None:
        return never
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(digest: str | None) -> str:
    if digest is None:
        return "(absent)"
    label, _, rest = digest.rpartition(" ")  # "upstream key <key>": keep the words
    return f"{label} {rest[:_SHORT]}" if label else digest[:_SHORT]


def render(result: dict[str, Any]) -> str:
    """`explain`'s answer as plain text: the summary first, then the details it rests on."""
    lines = [result["summary"]]
    if not result["recorded"]:
        return str(result["summary"])
    reason = f" ({result['reason']})" if result["reason"] else ""
    lines += ["", f"outcome:    {result['outcome']}{reason}, at {_when(result['at'])}"]
    lines.append(f"key:        {result['key'] or '(none)'}")
    width = max((len(name) for name in result["components"]), default=0)
    if result["components"]:
        lines.append("components:")
        lines += [f"  {name:<{width}}  {_short(d)}" for name, d in sorted(result["components"].items())]
    if result["key"] is not None:
        entry = result["entry"]
        if entry is None:
            lines.append("entry now:  none under this key (cleared, evicted or expired since)")
        else:
            lines.append(
                f"entry now:  created {_when(entry['created'])}, expires {_when(entry['expires'])}, "
                f"{entry['size']} bytes"
            )
    nearest = result["nearest"]
    if nearest is not None:
        lines.append(f"nearest:    {nearest['key']} (created {_when(nearest['created'])}, "
                     f"{nearest['common']} components in common)")
        width = max((len(name) for name in nearest["differs"]), default=0)
        for name in nearest["differs"]:
            run_digest, entry_digest = nearest["changes"][name]
            lines.append(f"  differs:  {name:<{width}}  this run {_short(run_digest)}, entry {_short(entry_digest)}")
    return "\n".join(lines)
