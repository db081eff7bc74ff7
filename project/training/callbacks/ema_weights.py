"""Lightning's EMA of the weights, with the test measuring the same averaged weights the validation chose by."""

import warnings
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeights(EMAWeightAveraging):
    """EMAWeightAveraging (validation and checkpoints hold the averaged weights) whose checkpoints, read back
    outside fitting, keep them.

    Lightning's callback restores the raw, non-averaged weights whenever a checkpoint is loaded while its averaged
    model exists: right for a resumed fit, but also when `trainer.test(ckpt_path="best")` follows `fit` in the
    same Trainer, as every run here does, so the test would measure other weights than those the best epoch was
    chosen by (measured on digits: the test line said "Found current_model_state ... used to initialize the
    model"). Outside fitting, the checkpoint's `state_dict` (the averaged weights) is what the model keeps.
    """

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Lightning warns that a model overriding configure_model may be sharded, which the averaged copy would not
        # follow; this project's configure_model only sets the memory layout and torch.compile, nothing sharded.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*WeightAveraging callback with a model that overrides")
            super().setup(trainer, pl_module, stage)
