"""The best checkpoint by val/acc, with ties broken by val/loss instead of by which epoch came first."""

from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor


class BestCheckpoint(ModelCheckpoint):
    """Keeps the one best checkpoint by `monitor`; an epoch that ties it wins when its `tie_breaker` is lower.

    Lightning replaces the best checkpoint only on a strictly better score, so once a small validation
    set saturates (val/acc 1.0 on 72 images of digits 0-4 by epoch 3, measured) every later epoch is
    thrown away and the "best" model is the least trained one. Among equally accurate epochs the one with
    the lower validation loss is the better model.
    """

    def __init__(self, tie_breaker: str = "val/loss", **kwargs: Any) -> None:
        super().__init__(save_top_k=1, **kwargs)
        self.tie_breaker = tie_breaker
        self.best_tie_breaker_score: float | None = None

    @property
    def state_key(self) -> str:
        """ModelCheckpoint's key: runs checkpointed before this class existed resume with their best still tracked."""
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def check_monitor_top_k(self, trainer: Trainer, current: Tensor | None = None) -> bool:
        better = super().check_monitor_top_k(trainer, current)
        tie_score = trainer.callback_metrics.get(self.tie_breaker)
        if not better and current is not None and tie_score is not None and self.best_k_models:
            best = self.best_k_models[self.kth_best_model_path]
            tied = bool(current.cpu() == best.cpu())
            lower = self.best_tie_breaker_score is None or float(tie_score) < self.best_tie_breaker_score
            better = trainer.strategy.reduce_boolean_decision(tied and lower)  # every rank must decide alike
        if better and tie_score is not None:
            self.best_tie_breaker_score = float(tie_score)
        return better

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_tie_breaker_score": self.best_tie_breaker_score}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:  # the same run: Lightning restored its best too
            self.best_tie_breaker_score = state_dict.get("best_tie_breaker_score")
