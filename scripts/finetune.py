"""Fine-tune a pretrained backbone on a target task; `--model.pretrained` names the checkpoint or its run folder."""

from project.cli.training import run_experiment
from project.lightning_modules import TransferClassifier

if __name__ == "__main__":
    run_experiment(TransferClassifier, default_config="digits_finetune.yaml")
