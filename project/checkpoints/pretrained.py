"""Where a fine-tuning run's backbone starts from, found, hashed, read safely and checked in one place.

A source is one of: a pretraining run's checkpoint (a .ckpt file, a run folder or an experiment folder: its
selected checkpoint), a torchvision model's state dict saved to a file (for machines without network), or
`torchvision:<WEIGHTS>`, torchvision's named weights for the configured zoo backbone (downloaded). The
LightningModule only receives the weights (`TransferClassifier.load_pretrained`).
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from project.backbones.torchvision_zoo import ZOO_ARCHITECTURES, TorchvisionBackbone, download_torchvision_weights
from project.checkpoints.files import find_checkpoint, read_torch_file
from project.errors import UserError

TORCHVISION_PREFIX = "torchvision:"


@dataclass(frozen=True)
class PretrainedBackbone:
    """Pretrained backbone weights and what they are: the architecture, the input they were trained on, and where
    they came from (provenance, recorded in every checkpoint of the run that uses them)."""

    source: str  # the resolved file, or torchvision:<WEIGHTS>
    sha256: str | None  # of the file; None for downloaded weights
    backbone: str
    backbone_args: dict[str, Any] | None
    input_shape: tuple[int, int, int] | None  # None: torchvision weights, which take any image size
    state: dict[str, Tensor] = field(repr=False)  # a run's `backbone.` weights, or a whole torchvision model's
    pretraining: dict[str, Any] = field(default_factory=dict, repr=False)  # the run's hyperparameters and config

    @classmethod
    def open(
        cls, location: str, backbone: str | None = None, backbone_args: dict[str, Any] | None = None,
        expected_sha256: str | None = None,
    ) -> "PretrainedBackbone":
        """Read the source `location`; `backbone`, `backbone_args` are the config's (None: take the source's)."""
        if location.startswith(TORCHVISION_PREFIX):
            weights = location.removeprefix(TORCHVISION_PREFIX)
            arch = zoo_architecture(backbone, location)
            state = download_torchvision_weights(arch, weights)
            return cls(location, None, arch, backbone_args, None, state)
        path = find_checkpoint(location, "best")
        sha256 = checked_sha256(path, expected_sha256)
        content = read_torch_file(path)
        if isinstance(content, dict) and "state_dict" in content:  # a Lightning checkpoint of this project
            name, args, shape = run_architecture(content, path, backbone, backbone_args)
            prefix = "backbone."
            state = {k[len(prefix) :]: v for k, v in content["state_dict"].items() if k.startswith(prefix)}
            config_file = path.parent.parent / "config.yaml"  # <run>/checkpoints/x.ckpt -> <run>/config.yaml
            pretraining = {
                "pretraining_hparams": dict(content.get("hyper_parameters", {})),
                "pretraining_config": config_file.read_text() if config_file.is_file() else None,
            }
            return cls(str(path), sha256, name, args, shape, state, pretraining)
        if isinstance(content, dict) and content and all(isinstance(v, Tensor) for v in content.values()):
            return cls(str(path), sha256, zoo_architecture(backbone, str(path)), backbone_args, None, content)
        raise UserError(
            f"{str(path)!r} is neither a checkpoint of this project (no state_dict) nor a torchvision state dict: "
            f"give a pretraining run's checkpoint or a file saved with torch.save(model.state_dict(), ...)"
        )

    @property
    def provenance(self) -> dict[str, Any]:
        return {"pretrained_checkpoint": self.source, "sha256": self.sha256, **self.pretraining}

    def check_input_shape(self, input_shape: tuple[int, int, int]) -> None:
        if self.input_shape is not None and tuple(self.input_shape) != tuple(input_shape):
            channels, size, _ = self.input_shape
            raise UserError(
                f"{self.source!r} was pretrained on {tuple(self.input_shape)} (C, H, W) images but the data gives "
                f"{tuple(input_shape)}: if that is the wrong pretraining run (an experiment folder's newest one is "
                f"taken), point --model.pretrained at the right one; if it is the right one, adapt the data to it "
                f"with --data.channels={channels} --data.image_size={size}"
            )

    def copy_into(self, backbone: nn.Module) -> str:
        """Copy the weights into `backbone`, strictly (a missing, unexpected or reshaped key is an error)."""
        if self.input_shape is None:
            assert isinstance(backbone, TorchvisionBackbone)
            return f"{backbone.load_torchvision_state(self.state)} ({self.source})"
        own = backbone.state_dict()
        missing = sorted(own.keys() - self.state.keys())
        unexpected = sorted(self.state.keys() - own.keys())
        reshaped = [
            f"{key} {tuple(self.state[key].shape)} vs {tuple(own[key].shape)}"
            for key in sorted(own.keys() & self.state.keys())
            if self.state[key].shape != own[key].shape
        ]
        if missing or unexpected or reshaped:
            raise UserError(
                f"{self.source!r} does not fit this backbone: missing {missing[:5]}, unexpected {unexpected[:5]}, "
                f"other shape {reshaped[:5]}; use a checkpoint of the same architecture"
            )
        backbone.load_state_dict(self.state)
        return f"{self.backbone}: {len(self.state)} pretrained tensors reused from {self.source}"


def zoo_architecture(backbone: str | None, source: str) -> str:
    """The configured zoo backbone that torchvision weights are for."""
    if backbone not in ZOO_ARCHITECTURES:
        raise UserError(
            f"{source!r} is not a checkpoint of this project (it has no state_dict): if it is a torchvision model's "
            f"state dict, set --model.backbone to its architecture, one of {list(ZOO_ARCHITECTURES)}"
        )
    return backbone


def checked_sha256(path: Path, expected: str | None) -> str:
    """The file's sha256; if `expected` is given the file must match it (the run being reproduced used it)."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise UserError(f"cannot read the pretrained checkpoint {str(path)!r} ({error.strerror})") from error
    if expected is not None and digest != expected:
        raise UserError(
            f"{str(path)!r} has sha256 {digest[:12]}… but pretrained_sha256 asks for {expected[:12]}…: the pretrained "
            f"checkpoint changed; point --model.pretrained at the original file or drop --model.pretrained_sha256"
        )
    return digest


def run_architecture(
    checkpoint: dict[str, Any], path: Path, backbone: str | None, backbone_args: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None, tuple[int, int, int]]:
    """The backbone name, arguments and input shape a checkpoint was trained with, checked against the config."""
    hparams = checkpoint.get("hyper_parameters", {})
    if "backbone" not in hparams or "input_shape" not in hparams:
        raise UserError(f"{str(path)!r} is not a checkpoint of this project's models (no backbone hyperparameters)")
    saved, saved_args = hparams["backbone"], hparams.get("backbone_args")
    if (backbone is not None and backbone != saved) or (backbone_args is not None and backbone_args != saved_args):
        raise UserError(
            f"{str(path)!r} holds a {saved!r} backbone with args {saved_args} but the config asks for {backbone!r} "
            f"with {backbone_args}: drop --model.backbone (it is read from the checkpoint) or use a matching checkpoint"
        )
    return saved, saved_args, tuple(hparams["input_shape"])

