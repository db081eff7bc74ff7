"""A checkpoint that would run code when unpickled without weights_only: what safe loading must refuse."""

from pathlib import Path

import torch


class WritesMarker:
    """Unpickled with weights_only=False, this creates `marker`: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def save_code_carrying_checkpoint(path: Path, marker: Path) -> None:
    torch.save({"state_dict": {}, "payload": WritesMarker(marker)}, path)
