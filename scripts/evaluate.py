"""Evaluate a checkpoint on a test split: `evaluate.py --ckpt_path PATH [--data.dataset=...] [--output_dir DIR]`."""

from project.commands import evaluate

if __name__ == "__main__":
    evaluate()
