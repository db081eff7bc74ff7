"""Measure what transfer buys: scratch vs fine-tuning strategies over label budgets and seeds.

Configured like the other scripts: `--config configs/study_digits.yaml`, `--methods=[scratch, lp_ft]`, ...
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing

from project.study.main import main  # noqa: E402

if __name__ == "__main__":
    main()
