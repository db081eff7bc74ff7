"""Pretrain a backbone on a source task, with its labels or (`--objective=simclr`) without; `--help` lists every
setting, `--config` takes a YAML (configs/cifar10_simclr.yaml for SimCLR)."""

import sys

from project.cli.training import pretraining_class, run_experiment

if __name__ == "__main__":
    run_experiment(pretraining_class(sys.argv[1:]), default_config="digits_pretrain.yaml")
