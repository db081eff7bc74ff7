"""Pretrain a backbone (MLP or CNN) on a source task; `--help` lists every setting, `--config` takes a YAML."""

from project.cli.training import run_experiment
from project.lightning_modules import ImageClassifier

if __name__ == "__main__":
    run_experiment(ImageClassifier, default_config="digits_pretrain.yaml")
