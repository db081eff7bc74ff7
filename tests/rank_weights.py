"""Each DDP rank's final weights, saved by a callback the run loads from the test's folder, to compare the ranks."""

from pathlib import Path

import torch

RANK_DUMP = '''
import os, torch
from lightning.pytorch import Callback

class DumpWeights(Callback):
    """Saves each rank's final weights, to compare the ranks after a DDP run."""

    def on_fit_end(self, trainer, model):
        folder = os.environ["RANK_DUMP_DIR"]
        torch.save(model.state_dict(), os.path.join(folder, f"rank{trainer.global_rank}.pt"))
'''


def ranks_weights(folder: Path) -> tuple[dict, dict]:
    """The state dicts rank 0 and rank 1 saved under `folder` (RANK_DUMP_DIR)."""
    return tuple(torch.load(folder / f"rank{rank}.pt", weights_only=True) for rank in (0, 1))
