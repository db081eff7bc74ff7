"""Measure what transfer buys: scratch vs fine-tuning strategies over label budgets and seeds.

Configured like the other scripts: `--config configs/study_digits.yaml`, `--methods=[scratch, lp_ft]`, ...
"""

from project.commands import study

if __name__ == "__main__":
    study()
