"""Runs a peer framework's version of the workloads in another interpreter (Prefect today).

The peer runs in its own interpreter so that its dependencies never meet headwater's. The
suite never installs anything: if the peer interpreter lacks the framework, the peer entry
says so and the suite carries on without the column.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.stats import ratios
from benchmarks.suite import Series, SuiteConfig, summarise_series
from benchmarks.workload import Workload

PREFECT_SCRIPT = Path(__file__).parent / "peers" / "prefect_peer.py"
PEER_TIMEOUT_S = 3600.0


def run_prefect_peer(
    python: str, workloads: Sequence[Workload], config: SuiteConfig
) -> dict[str, Any]:
    """Measure ``workloads`` through Prefect in ``python``; never raises, errors are reported."""
    entry: dict[str, Any] = {"name": "prefect", "python": python, "available": False}
    probe = _probe(python)
    if probe is not None:
        entry["error"] = probe
        return entry
    spec = {
        "workloads": {
            w.name: {"n": config.size_of(w), "repeats": config.repeats_of(w), "warmup": w.warmup}
            for w in workloads
        }
    }
    with tempfile.TemporaryDirectory(prefix="headwater-peer-") as scratch:
        out, log = Path(scratch) / "peer.json", Path(scratch) / "peer.log"
        with log.open("w") as log_file:  # Prefect logs every task run; keep it off the terminal
            try:
                completed = subprocess.run(
                    [python, str(PREFECT_SCRIPT), "--spec", json.dumps(spec), "--out", str(out)],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    timeout=PEER_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                entry["error"] = f"peer run failed: {exc}"
                return entry
        if completed.returncode != 0 or not out.exists():
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            entry["error"] = f"peer exited with {completed.returncode}: {tail}"
            return entry
        document = json.loads(out.read_text())
    entry.update(available=True, error=None, versions=document.get("versions", {}))
    entry["workloads"] = document.get("workloads", {})
    return entry


def _probe(python: str) -> str | None:
    """None when ``python`` can import prefect, else a message saying what is wrong."""
    try:
        completed = subprocess.run(
            [python, "-c", "import prefect"], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run peer interpreter {python}: {exc}"
    if completed.returncode != 0:
        last = (completed.stderr.strip().splitlines() or ["unknown error"])[-1]
        return f"peer interpreter {python} lacks prefect ({last}); install it there to compare"
    return None


def attach_peer(
    results: list[dict[str, Any]], workloads: Sequence[Workload], peer: dict[str, Any]
) -> None:
    """Add the peer's figures, and their ratio to our baseline, beside every runner's figures."""
    by_name = {w.name: w for w in workloads}
    for result in results:
        raw = peer.get("workloads", {}).get(result["name"])
        if raw is None:
            continue
        workload = by_name[result["name"]]
        series = Series(peer["name"], raw.get("measurements", []), raw.get("error"))
        figures = summarise_series(workload, series, raw.get("n", result["n"]))
        result["peers"] = {peer["name"]: {"n": raw.get("n"), "error": series.error, "figures": figures}}
        for row in result["rows"]:
            baseline = result["baselines"][row["baseline"]]["figures"]
            for figure in workload.figures:
                cell = row["figures"].get(figure.key)
                if cell is None or figure.key not in figures:
                    continue
                cell["peer"] = {k: figures[figure.key][k] for k in ("min", "median", "max", "best")}
                base = baseline.get(figure.key)
                cell["peer_ratio"] = ratios(figure, figures[figure.key], base) if base else None
