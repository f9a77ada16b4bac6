"""The check a flow runs on its runner's workers before it hands them any task run.

A task run on a Dask or Ray worker runs headwater's engine there and records every state into
the flow's state service from there. A worker without headwater, with an incompatible one, or
without a route to the state service would fail every task run, or worse, run them and lose
their records (Prefect users meet the last one as task runs that silently vanish). So when a
flow starts its runner it builds a `FlowPreflight` and hands it to `TaskRunner.preflight`,
which runs it once on every worker the runner has (one round trip, see the runners). On each
worker it:

1. loads: unpickling it imports `headwater.runtime`, so a worker without headwater fails here
   and the runner names it;
2. compares versions: *compatible* means the same major and minor version (`0.1.0` runs with
   `0.1.3`, not with `0.2.0`): task calls and their outcomes cross as pickles of our own
   classes, whose fields may change between minor versions but not between patch releases;
3. pings the state service at the flow's target, with the flow's token and TLS CA
   (`api.client.preflight`): unreachable for the flow's `HEADWATER_API_CONNECT_TIMEOUT_SECONDS`,
   a refused token or TLS that does not fit is a problem, named with the URL (never the token)
   and how to fix it.

With recording off (`HEADWATER_RECORD=0`) there is nothing to reach and no check at all.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from .recording import RunServices

#: Seconds a worker is given on top of the ping's own wait: unpickling, a gRPC channel, a thread.
_SLACK = 5.0
_LOOPBACK = ("127.", "localhost", "::1", "[::1]")


def running_version() -> str:
    """The version of the headwater this code belongs to (the package's `__version__`).

    The package is imported before any module in it, so this reads its attribute without an
    import of the facade (which imports the runtime, not the other way round)."""
    package = sys.modules[__name__.partition(".")[0]]
    return str(getattr(package, "__version__", "unknown"))


def compatible(here: str, flow: str) -> bool:
    """Whether headwater `here` on a worker can run task calls from a flow on `flow`: the same
    major and minor version (see the module docstring); unparseable versions must be equal."""
    return here == flow or ("." in here and here.split(".")[:2] == flow.split(".")[:2])


@dataclass(frozen=True, slots=True)
class FlowPreflight:
    """`WorkerCheck` for a flow: see the module docstring. Carries the flow's state service
    target, token included, as every task call does (`RunServices`); its repr hides it."""

    version: str
    url: str
    token: str | None = field(repr=False)
    tls_ca: str | None
    wait: float

    @property
    def timeout(self) -> float:
        return self.wait + _SLACK

    def __call__(self) -> str | None:
        try:
            return self._version_problem() or self._service_problem()
        except Exception as exc:  # a worker is told nothing it cannot act on, but never raises
            return f"headwater's preflight check failed there: {type(exc).__name__}: {exc}"

    def _version_problem(self) -> str | None:
        here = running_version()
        if compatible(here, self.version):
            return None
        wanted = ".".join(self.version.split(".")[:2])
        return (
            f"runs headwater {here} but the flow runs {self.version}: install headwater "
            f"{wanted}.x there (task calls cross as pickles, compatible within a minor version)"
        )

    def _service_problem(self) -> str | None:
        from pathlib import Path

        from ..api.client import Target, preflight  # deferred: grpc stays out of `import headwater`
        from ..api.errors import StateServiceError

        try:
            target = Target.resolve(self.url, self.token, Path(self.tls_ca) if self.tls_ca else None)
            preflight(target, self.wait, unreachable=_unreachable_advice(self.url))
        except StateServiceError as exc:
            return str(exc)
        return None


def _unreachable_advice(url: str) -> str:
    host = url.partition("://")[2].rpartition(":")[0] or url
    loopback = host.startswith(_LOOPBACK)
    where = "that is a loopback address, which other hosts cannot reach; " if loopback else ""
    return (
        f"every task run records its states there from its worker; {where}start the server "
        f"where the workers can reach it (`headwater server start --host 0.0.0.0 --token T`) "
        f"and set HEADWATER_API_URL (and HEADWATER_API_TOKEN) to an address the workers can "
        f"reach, or set HEADWATER_RECORD=0 to run without recording"
    )


def preflight_for(services: RunServices) -> FlowPreflight | None:
    """The check for a flow recording through `services`; None when recording is off."""
    if services.target is None:
        return None
    from ..api import get_settings

    url, token, tls_ca = services.target
    wait = get_settings().api_connect_timeout_seconds
    return FlowPreflight(running_version(), url, token, tls_ca, wait)
