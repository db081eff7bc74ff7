"""Pretrain a backbone on a source task, with its labels or (`--objective=simclr`) without; `--help` lists every
setting, `--config` takes a YAML (configs/cifar10_simclr.yaml for SimCLR)."""

from project.commands import pretrain

if __name__ == "__main__":
    pretrain()
