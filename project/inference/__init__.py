"""Inference with trained checkpoints: evaluate on a test split, predict image files, export for deployment."""
