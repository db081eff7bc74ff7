"""Choose fine-tuning settings with Optuna on the label-budgeted validation split (never on test): a search space
over any setting in YAML (configs/tune_digits.yaml by default), pruning, a sweep that continues where it stopped,
and the best settings as a config overlay. Needs the optuna extra: pip install 'lightning-transfer-lab[optuna]'."""

from project.commands import tune

if __name__ == "__main__":
    tune()
