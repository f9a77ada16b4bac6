"""Command line: choose workloads and sizes, run them, print the table, write JSON and a plot."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks import registry
from benchmarks.engines import divert_runtime_logs
from benchmarks.machine import machine_info
from benchmarks.peer import attach_peer, run_prefect_peer
from benchmarks.plot import draw, run_sweep, sweep_steps
from benchmarks.report import print_table, progress_bar
from benchmarks.suite import SuiteConfig, run_suite
from benchmarks.workload import Workload

SCHEMA_VERSION = 1
PLOT_WORKLOAD = "submit"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="headwater benchmarks: each figure beside the raw engine measured in the same run.",
    )
    parser.add_argument("workloads", nargs="*", help="workloads to run (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="list workloads and exit")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats (~1 min)")
    size.add_argument("--tiny", action="store_true", help="tiny sizes, for smoke tests")
    parser.add_argument("--size", type=int, help="override N for every selected workload")
    parser.add_argument("--repeats", type=int, help="measured repeats per engine (default 3, quick 2)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every figure as JSON here")
    parser.add_argument("--plot", type=Path, metavar="PATH", help="sweep submit throughput, draw a PNG")
    parser.add_argument("--peer-python", metavar="PATH", help="an interpreter with Prefect installed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--show-logs", action="store_true", help="let headwater log runs to stderr")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any row failed")
    options = parser.parse_args(argv)
    if options.repeats is not None and options.repeats < 1:
        parser.error("--repeats must be at least 1")
    if options.size is not None and options.size < 1:
        parser.error("--size must be at least 1")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    err = Console(stderr=True, soft_wrap=True)  # messages stay greppable on one line
    available = registry.discover()
    if options.list:
        list_workloads(available)
        return 0
    try:
        selected = registry.select(available, options.workloads)
    except registry.UnknownWorkload as exc:
        err.print(f"[red]{exc}[/red]")
        return 2
    if not options.show_logs:
        divert_runtime_logs()
    mode = "tiny" if options.tiny else "quick" if options.quick else "full"
    config = SuiteConfig(mode=mode, repeats=options.repeats, size=options.size)
    plot_workload = next((w for w in available if w.name == PLOT_WORKLOAD), None)
    total = sum(config.steps_of(w) for w in selected)
    if options.plot and plot_workload:
        total += sweep_steps(plot_workload, config)

    started = time.monotonic()
    with progress_bar(total, enabled=not options.no_progress) as progress:
        results = run_suite(selected, config, progress)
        sweep = run_sweep(plot_workload, config, progress) if options.plot and plot_workload else None

    elapsed_s = time.monotonic() - started
    peer = None
    if options.peer_python:
        err.print(f"running the Prefect peer in {options.peer_python} …")
        peer = run_prefect_peer(options.peer_python, selected, config)
        if peer["available"]:
            attach_peer(results, selected, peer)
        else:
            err.print(f"[yellow]Prefect column skipped: {peer['error']}[/yellow]")

    print_table(results, peer_name="prefect" if peer and peer["available"] else None)
    machine = machine_info()
    if options.plot and sweep is None:
        err.print(f"[yellow]plot skipped: no {PLOT_WORKLOAD!r} workload to sweep[/yellow]")
    if sweep is not None and options.plot:
        suffix = f" ({machine['cpu_count']} cores, {machine['date'][:10]})"
        err.print(draw(sweep, options.plot, title_suffix=suffix))
    if options.json:
        document = json_document(options, config, machine, results, peer, sweep)
        document["suite"]["elapsed_s"] = round(elapsed_s, 1)  # headwater side only, no peer
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(document, indent=2) + "\n")
        err.print(f"JSON written to {options.json}")
    failed = any(row["error"] for r in results for row in r["rows"]) or any(
        b["error"] for r in results for b in r["baselines"].values()
    )
    return 1 if options.strict and failed else 0


def list_workloads(workloads: Sequence[Workload]) -> None:
    for workload in workloads:
        runners = ", ".join(f"{r} vs {b}" for r, b in workload.runners.items())
        sizes = ", ".join(f"{mode} {n:,}" for mode, n in workload.sizes.items())
        print(f"{workload.name:<12} {workload.description}")
        print(f"{'':<12} runners: {runners}; sizes ({workload.size_unit}): {sizes}")


def json_document(
    options: argparse.Namespace,
    config: SuiteConfig,
    machine: dict[str, Any],
    results: list[dict[str, Any]],
    peer: dict[str, Any] | None,
    sweep: dict[str, Any] | None,
) -> dict[str, Any]:
    """The whole run as one JSON object (shape documented in benchmarks/README.md)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "suite": {
            "mode": config.mode,
            "repeats": config.repeats,
            "size": config.size,
            "argv": sys.argv[1:],
            "runtime_logs": "stderr" if options.show_logs else "devnull",
        },
        "machine": machine,
        "workloads": results,
        "peer": peer,
        "sweep": sweep,
    }
