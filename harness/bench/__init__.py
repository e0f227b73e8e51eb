"""Benchmark definitions (``benchmarks/*.toml``) and the runner that executes them."""
