"""Compare finished runs: `report.py RUN_DIR [RUN_DIR ...] [--output_dir DIR]` writes report.png and report.md."""

from project.commands import report

if __name__ == "__main__":
    report()
