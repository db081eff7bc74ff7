"""Fine-tune a pretrained backbone on a target task; `--model.pretrained` names the checkpoint or its run folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing

from project.cli.training import run_experiment  # noqa: E402
from project.lightning_modules import TransferClassifier  # noqa: E402

if __name__ == "__main__":
    run_experiment(TransferClassifier, default_config="digits_finetune.yaml")
