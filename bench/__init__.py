"""Benchmarks and fault-injection runs (not tests: they print figures). Also a Django app
whose tasks the benchmark workers run (see bench/settings.py)."""
