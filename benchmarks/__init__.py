"""Benchmarks: figures written to benchmarks/results/*.json and summarised in docs/performance.md."""
