"""Benchmarks with in-run baselines (``make bench`` / ``python -m bench``); docs/benchmarks.md."""
