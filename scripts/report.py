"""Compare finished runs: `report.py RUN_DIR [RUN_DIR ...] [--output DIR]` writes report.png and report.md."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing

from project.reports.run_report import main  # noqa: E402

if __name__ == "__main__":
    main()
