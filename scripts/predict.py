"""Predict image classes: `predict.py --ckpt PATH IMAGE_OR_FOLDER... [--top_k 3] [--output predictions.csv]`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing

from project.inference.predict import main  # noqa: E402

if __name__ == "__main__":
    main()
