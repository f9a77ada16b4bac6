"""Deployments, work pools and workers: the coordination plane that runs flows on demand.

A deployment names a flow by its entrypoint (`entrypoints.py`), says where that flow's code
comes from (`sources.py`: a local directory or a git repository at a branch or commit) and
which parameters it takes (`parameters.py`: their JSON schema, checked before a run starts).
This package sits above `runtime` and `api`; nothing below imports it.
"""
