"""Benchmark definitions: TOML files validated against per-kind schemas, and what a run of one needs."""
