"""A callback the tests add with --trainer.callbacks+=batch_recorder.FirstValidationBatch: it keeps the first
validation batch the model received (after the data module normalized it), so a test can check its values."""

from lightning.pytorch import Callback


class FirstValidationBatch(Callback):
    images = None  # the first validation batch's images of the newest run that had one

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            type(self).images = batch[0].detach().cpu().clone()
