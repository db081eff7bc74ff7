"""Experiments over many runs: transfer studies, the transferability check, sweeps, benchmarks, and the Python API."""
