"""Tabular benchmarks: look up what an architecture reaches without training it."""
