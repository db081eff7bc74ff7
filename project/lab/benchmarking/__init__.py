"""Throughput of the data paths and training loops, measured side by side in one process."""
