"""Throughput table: compute-only limit vs this project's data path vs torchvision's DataLoader vs a plain loop."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing

from project.benchmarking.main import main  # noqa: E402

if __name__ == "__main__":
    main()
