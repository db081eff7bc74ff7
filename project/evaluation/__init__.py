"""Evaluation of trained runs: evaluate a checkpoint on a test split, predict image files, export for deployment,
and report over finished runs from their logged metrics."""
