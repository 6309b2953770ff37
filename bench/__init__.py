"""Benchmarks: `make bench` (or `python -m bench [section ...]`) prints markdown tables.

Every figure is a median with min and max over repeated runs in one process, and every speed is
reported next to a baseline measured in the same process, as a ratio.
"""
