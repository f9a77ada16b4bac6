"""Finds workloads: every module in `benchmarks.workloads` exporting WORKLOAD or WORKLOADS."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Sequence

from benchmarks import workloads as workloads_package
from benchmarks.workload import Workload


class UnknownWorkload(LookupError):
    """A name on the command line matches no workload."""


def discover() -> list[Workload]:
    """Import every workload module and return its workloads in suite order."""
    found: dict[str, Workload] = {}
    for module_info in pkgutil.iter_modules(workloads_package.__path__):
        if module_info.name.startswith("_"):
            continue  # private helpers shared by workload modules
        module = importlib.import_module(f"{workloads_package.__name__}.{module_info.name}")
        for workload in _exported(module):
            if workload.name in found:
                raise ValueError(f"two workloads are named {workload.name!r}")
            found[workload.name] = workload
    return sorted(found.values(), key=lambda w: (w.order, w.name))


def _exported(module: object) -> Iterable[Workload]:
    single = getattr(module, "WORKLOAD", None)
    if single is not None:
        yield single
    yield from getattr(module, "WORKLOADS", ())


def select(available: Sequence[Workload], names: Sequence[str]) -> list[Workload]:
    """Workloads matching ``names``, in suite order; no names means all of them.

    A name matches a workload of that name, or a family sharing it as a prefix before a dash:
    ``data`` selects ``data-small`` and ``data-large``.
    """
    if not names:
        return list(available)
    chosen: list[Workload] = []
    for name in names:
        matches = [w for w in available if w.name == name or w.name.startswith(name + "-")]
        if not matches:
            known = ", ".join(w.name for w in available)
            raise UnknownWorkload(f"no workload named {name!r}; known: {known}")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen, key=lambda w: (w.order, w.name))
