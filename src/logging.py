"""`headwater.logging`: where a Prefect user looks for the run logger (`prefect.logging`).

An alias: `get_run_logger()` as `headwater` exports it. (Inside the package, `import logging`
is absolute and still means the standard library's.)
"""

from .runtime import get_run_logger as get_run_logger

__all__ = ["get_run_logger"]
