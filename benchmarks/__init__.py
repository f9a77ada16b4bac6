"""headwater's benchmark suite: every figure beside the raw engine underneath, same run.

Run ``python -m benchmarks --help`` from the repository root. Workloads live one per module
in `benchmarks.workloads` (the interface is documented there and in README.md).
"""
