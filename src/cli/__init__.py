"""The `headwater` command line: one entry point, one subcommand module per noun."""

from ._main import main as main

__all__ = ["main"]
