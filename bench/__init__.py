"""Benchmarks of the journal: throughput, recovery, memory, and the SIGKILL crash run.

Run them all with `uv run python -m bench.run` (see bench/run.py); results go to
docs/benchmarks.md by hand, with the date and the machine.
"""
