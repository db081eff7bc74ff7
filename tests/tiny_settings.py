"""Overrides that shrink the real configs for tests: the YAML users run is the YAML tests run, only smaller."""

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
SCRIPTS = REPOSITORY / "scripts"  # what users run, for the tests that run it as they do

# One short epoch on CPU; everything else comes from the config file.
TINY_RUN = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=2",
    "--trainer.limit_test_batches=2",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]
TINY_BACKBONE = {"channels": [4, 8], "feature_size": 16, "batch_norm": True}  # blocks: conv, conv, fc
TINY_CNN = "--model.backbone_args={channels: [4, 8], feature_size: 16, batch_norm: true}"  # the same, as an override
