"""Benchmarks of the fan-out against the real stack (see bench/fanout.py and docs/benchmarks.md)."""
