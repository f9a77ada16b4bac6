"""Human output: a rich progress bar on stderr and the results table on stdout."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmarks.suite import ProgressSink


class RichProgress:
    """A ProgressSink drawing one bar over every trial of the run."""

    def __init__(self, progress: Progress, total: int) -> None:
        self._progress = progress
        self._task = progress.add_task("starting", total=total)

    def begin(self, label: str) -> None:
        self._progress.update(self._task, description=label)

    def advance(self) -> None:
        self._progress.advance(self._task)


@contextmanager
def progress_bar(total: int, *, enabled: bool = True) -> Iterator[ProgressSink]:
    """A progress bar on stderr, so stdout stays a clean table."""
    progress = Progress(
        TextColumn("[bold]{task.description:<32}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,  # the table is the lasting output
        disable=not enabled,
    )
    with progress:
        yield RichProgress(progress, total)


def format_number(value: float | None) -> str:
    """Three significant figures, with thousands separators for big numbers."""
    if value is None:
        return "–"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_ratio(ratio: float | None) -> str:
    """An overhead factor, coloured: near the raw engine is green, far from it red."""
    if ratio is None:
        return "–"
    colour = "green" if ratio <= 1.5 else "yellow" if ratio <= 5 else "red"
    return f"[{colour}]{ratio:.2f}×[/{colour}]"


def results_table(results: Sequence[dict[str, Any]], *, peer_name: str | None = None) -> Table:
    """One row per (workload, runner, figure shown in tables); errors listed underneath."""
    table = Table(
        title="headwater benchmarks (median of repeats; ratio = headwater / raw engine, lower is better)",
        title_justify="left",
        caption_justify="left",
    )
    for header, justify in [
        ("workload", "left"),
        ("n", "right"),
        ("runner", "left"),
        ("figure", "left"),
        ("headwater", "right"),
        ("best", "right"),
        ("baseline", "right"),
        ("engine", "left"),
        ("ratio", "right"),
    ]:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    if peer_name:
        table.add_column(peer_name, justify="right")
        table.add_column(f"{peer_name} ratio", justify="right")
    errors: list[str] = []
    for result in results:
        for row_cells in _workload_rows(result, errors, peer=bool(peer_name)):
            table.add_row(*row_cells)
        table.add_section()
    if errors:
        table.caption = "\n".join(f"[red][{i}] {text}[/red]" for i, text in enumerate(errors, 1))
    return table


def _note(errors: list[str], text: str) -> str:
    """A footnote marker for ``text``, shared by every cell with the same error."""
    if text not in errors:
        errors.append(text)
    return f"[red]error [{errors.index(text) + 1}][/red]"


def _workload_rows(result: dict[str, Any], errors: list[str], *, peer: bool) -> Iterator[list[str]]:
    shown = [spec["key"] for spec in result["figure_specs"] if spec["in_table"]]
    size = f"{result['n']:,} {result['size_unit']}"
    first = True
    for row in result["rows"]:
        baseline = result["baselines"][row["baseline"]]
        for key in shown:
            figure = row["figures"].get(key)
            spec = next(s for s in result["figure_specs"] if s["key"] == key)
            base_figure = baseline["figures"].get(key)
            if figure is None:
                measured = _note(errors, row["error"]) if row["error"] else "–"
                best = ratio = "–"
                peer_cells = ["–", "–"]
            else:
                measured, best = format_number(figure["median"]), format_number(figure["best"])
                ratio_median = (figure.get("ratio") or {}).get("median")
                ratio = format_ratio(ratio_median) + _ratio_target_mark(spec, ratio_median)
                peer_cells = _peer_cells(figure)
            if base_figure is not None:
                base_cell = format_number(base_figure["median"])
            elif baseline["error"]:
                base_cell = _note(errors, f"{row['baseline']}: {baseline['error']}")
            else:
                base_cell = "–"
            yield [
                result["name"] if first else "",
                size if first else "",
                row["runner"],
                spec["unit"] + _target_mark(spec, figure),
                measured,
                best,
                base_cell,
                row["baseline"],
                ratio,
                *(peer_cells if peer else []),
            ]
            first = False


def _target_mark(spec: dict[str, Any], figure: dict[str, Any] | None) -> str:
    target = spec.get("target")
    if target is None or figure is None:
        return ""
    met = figure["median"] >= target if spec["higher_is_better"] else figure["median"] <= target
    return f" [green](target {target:g} ✓)[/green]" if met else f" [red](target {target:g} ✗)[/red]"


def _ratio_target_mark(spec: dict[str, Any], ratio: float | None) -> str:
    target = spec.get("ratio_target")
    if target is None or ratio is None:
        return ""
    met = ratio <= target
    return f" [green](≤ {target:g}× ✓)[/green]" if met else f" [red](≤ {target:g}× ✗)[/red]"


def _peer_cells(figure: dict[str, Any]) -> list[str]:
    peer = figure.get("peer")
    if not peer:
        return ["–", "–"]
    return [format_number(peer["median"]), format_ratio((figure.get("peer_ratio") or {}).get("median"))]


def print_table(results: Sequence[dict[str, Any]], *, peer_name: str | None = None) -> None:
    """Print the results table to stdout, wide enough not to wrap figures."""
    Console(width=None if sys.stdout.isatty() else 160).print(results_table(results, peer_name=peer_name))
