"""Benchmarks for wecom-sync. Run from the repository root: ``python -m bench.ingest``."""
