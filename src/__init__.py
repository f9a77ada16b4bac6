"""Headwater: a fast, observable Python dataflow runtime."""

__version__ = "0.1.0"
