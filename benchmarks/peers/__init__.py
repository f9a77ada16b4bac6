"""Peer scripts: the same workloads through another framework, run in *its* interpreter.

Each script is standalone (stdlib plus the framework), reads a JSON spec from ``--spec`` and
writes its raw measurements as JSON to ``--out``; `benchmarks.peer` runs it and folds the
figures into the table as an extra column.
"""
