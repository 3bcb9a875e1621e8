"""The README's benchmark numbers, rendered from ``benchmarks/results``: ``python -m benchmarks.readme [--check]``."""
