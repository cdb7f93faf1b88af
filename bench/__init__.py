"""Benchmarks: `python -m bench.engine` (engine), `python -m bench.service` (service)."""
