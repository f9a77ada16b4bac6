"""Renders a results JSON as the Markdown table kept in README.md.

    python -m benchmarks.markdown benchmarks/results/latest.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.report import format_number


def render(document: dict[str, Any]) -> str:
    """A heading line naming date and machine, then one table row per figure shown in tables."""
    machine = document["machine"]
    memory_gib = (machine.get("memory_bytes") or 0) / 2**30
    lines = [
        f"Measured {machine['date']} on {machine['cpu_count']} cores ({machine['cpu_model']}), "
        f"{memory_gib:.0f} GiB, {machine['os']}, Python {machine['python']}, "
        f"headwater {machine['packages'].get('headwater', '?')} at commit "
        f"{machine.get('git_commit') or '?'}"
        f"{' plus uncommitted changes under src/' if machine.get('git_dirty_src') else ''}; "
        f"mode `{document['suite']['mode']}`.",
        "",
        "| workload | n | runner | figure | headwater | baseline | engine | ratio |",
        "| --- | ---: | --- | --- | ---: | ---: | --- | ---: |",
    ]
    for workload in document["workloads"]:
        shown = [spec for spec in workload["figure_specs"] if spec["in_table"]]
        size = f"{workload['n']:,} {workload['size_unit']}"
        for row in workload["rows"]:
            baseline = workload["baselines"][row["baseline"]]["figures"]
            for spec in shown:
                figure = row["figures"].get(spec["key"])
                measured = format_number(figure["median"]) if figure else f"error: {row['error']}"
                ratio = (figure or {}).get("ratio") or {}
                ratio_text = f"{ratio['median']:.2f}×" if ratio.get("median") else "–"
                ratio_text += ratio_target_note(spec, ratio.get("median"))
                base = baseline.get(spec["key"])
                lines.append(
                    f"| {workload['name']} | {size} | {row['runner']} | {spec['unit']}"
                    f"{target_note(spec, figure)} | {measured} "
                    f"| {format_number(base['median']) if base else '–'} | {row['baseline']} "
                    f"| {ratio_text} |"
                )
    return "\n".join(lines)


def target_note(spec: dict[str, Any], figure: dict[str, Any] | None) -> str:
    """What follows a figure's unit when it has a goal, e.g. `` (target ≤ 0.75: met)``."""
    target = spec.get("target")
    if target is None or figure is None:
        return ""
    met = figure["median"] >= target if spec["higher_is_better"] else figure["median"] <= target
    return f" (target {'≥' if spec['higher_is_better'] else '≤'} {target:g}: {'met' if met else 'missed'})"


def ratio_target_note(spec: dict[str, Any], ratio: float | None) -> str:
    """What follows a ratio when the figure has a ratio goal, e.g. `` (target ≤ 1.5×: met)``."""
    target = spec.get("ratio_target")
    if target is None or ratio is None:
        return ""
    return f" (target ≤ {target:g}×: {'met' if ratio <= target else 'missed'})"


if __name__ == "__main__":
    print(render(json.loads(Path(sys.argv[1]).read_text())))
