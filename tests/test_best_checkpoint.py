"""The best checkpoint: highest val/acc, and among equal val/acc the lowest val/loss, also across a resume."""

from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from project.training.callbacks.best_checkpoint import BestCheckpoint

# Per epoch: val/acc saturates at 1.0 from epoch 1 while val/loss keeps moving.
VAL_ACC = [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9]
VAL_LOSS = [0.9, 0.5, 0.3, 0.4, 0.35, 0.2, 0.1]


class ScriptedScores(LightningModule):
    """Trains a dummy weight; logs the scripted val/acc and val/loss of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return (self.weight - 1).pow(2).sum()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val/acc", VAL_ACC[self.current_epoch])
        self.log("val/loss", VAL_LOSS[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(
    folder: Path, epochs: int, ckpt_path: str | None = None, checkpoint_class: type = BestCheckpoint
) -> ModelCheckpoint:
    best = checkpoint_class(monitor="val/acc", mode="max", dirpath=folder, filename="best-{epoch:03d}")
    last = ModelCheckpoint(dirpath=folder, filename="last", enable_version_counter=False)
    data = torch.utils.data.DataLoader(torch.zeros(2, 1))
    trainer = Trainer(
        max_epochs=epochs, callbacks=[best, last], logger=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )
    trainer.fit(ScriptedScores(), train_dataloaders=data, val_dataloaders=data, ckpt_path=ckpt_path)
    return best


def test_a_tie_in_val_acc_goes_to_the_lower_val_loss_and_one_best_file_is_kept(tmp_path: Path) -> None:
    best = fit(tmp_path, epochs=5)
    # Plain ModelCheckpoint would keep epoch 1, the first to reach 1.0; epoch 2 has the lowest loss among the ties.
    assert Path(best.best_model_path).name == "best-epoch=002.ckpt"
    assert sorted(p.name for p in tmp_path.glob("best-*.ckpt")) == ["best-epoch=002.ckpt"]
    assert best.best_tie_breaker_score == pytest.approx(0.3)


def test_a_lower_loss_does_not_beat_a_higher_accuracy(tmp_path: Path) -> None:
    best = fit(tmp_path, epochs=7)  # epoch 6 has the lowest loss of all, but val/acc 0.9
    assert Path(best.best_model_path).name == "best-epoch=005.ckpt"


def test_a_resumed_run_remembers_the_best_tie_breaker(tmp_path: Path) -> None:
    fit(tmp_path, epochs=4)  # best: epoch 2 (loss 0.3)
    best = fit(tmp_path, epochs=5, ckpt_path=str(tmp_path / "last.ckpt"))
    # Epoch 4 ties at val/acc 1.0 with loss 0.35: it would win against a forgotten score, not against 0.3.
    assert Path(best.best_model_path).name == "best-epoch=002.ckpt"
    assert sorted(p.name for p in tmp_path.glob("best-*.ckpt")) == ["best-epoch=002.ckpt"]


def test_a_run_checkpointed_by_plain_model_checkpoint_resumes_with_its_best_still_tracked(tmp_path: Path) -> None:
    fit(tmp_path, epochs=3, checkpoint_class=ModelCheckpoint)  # best: epoch 1, the first to reach 1.0
    best = fit(tmp_path, epochs=5, ckpt_path=str(tmp_path / "last.ckpt"))
    assert Path(best.best_model_path).name == "best-epoch=004.ckpt"
    assert sorted(p.name for p in tmp_path.glob("best-*.ckpt")) == ["best-epoch=004.ckpt"]  # one best, not two
