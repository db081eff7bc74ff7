"""Pretrain a backbone on a source task, with its labels or (`--model=SimCLRPretraining`) without; `--help` lists every
setting but the model's, `--model.help ImageClassifier` (or SimCLRPretraining) those; `--config` takes a YAML
(configs/cifar10_simclr.yaml for SimCLR)."""

from project.commands import pretrain

if __name__ == "__main__":
    pretrain()
