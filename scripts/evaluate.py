"""Evaluate a checkpoint on a test split: `evaluate.py --ckpt PATH [--data.dataset=...] [--output DIR]`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing

from project.inference.evaluate import main  # noqa: E402

if __name__ == "__main__":
    main()
