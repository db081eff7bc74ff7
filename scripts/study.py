"""Measure what transfer buys: scratch vs fine-tuning strategies over label budgets and seeds.

Configured like the other scripts: `--config configs/study_digits.yaml`, `--methods=[scratch, lp_ft]`, ...
"""

from project.study.main import main

if __name__ == "__main__":
    main()
