"""Pretrain a backbone (MLP or CNN) on a source task; `--help` lists every setting, `--config` takes a YAML."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing

from project.cli.training import run_experiment  # noqa: E402
from project.lightning_modules import ImageClassifier  # noqa: E402

if __name__ == "__main__":
    run_experiment(ImageClassifier, default_config="digits_pretrain.yaml")
