"""Evaluate a checkpoint on a test split: `evaluate.py --ckpt_path PATH [--data.dataset=...] [--output_dir DIR]`."""

from project.inference.evaluate import main

if __name__ == "__main__":
    main()
