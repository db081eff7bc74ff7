"""Where a fine-tuning run's backbone starts from, found, hashed, read safely and checked in one place.

A source is one of: a pretraining run's checkpoint (a .ckpt file, a run folder or an experiment folder: its
selected checkpoint); a library model's state dict saved to a file (torchvision or timm; .pt or .safetensors: for
machines without network); `torchvision:<WEIGHTS>`, torchvision's named weights for the configured zoo backbone;
or `timm:<name>`, timm's pretrained weights (both downloaded). Every source also says the input its weights were
trained under (`WeightsInput`: mean, std, size), which the run normalizes the fine-tuning data with by default.
The LightningModule only receives the weights (`TransferClassifier.load_pretrained`).
"""

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from project.backbones import Backbone, LibraryBackbone, WeightsInput
from project.backbones.exact_load import load_exactly
from project.backbones.registry import is_library_backbone, library_weights_input
from project.backbones.timm_backbones import PREFIX as TIMM_PREFIX
from project.backbones.timm_backbones import checked_name, download_timm_weights, same_architecture
from project.backbones.torchvision_zoo import ZOO_ARCHITECTURES, download_torchvision_weights
from project.backbones.torchvision_zoo import weights_input as torchvision_weights_input
from project.checkpoints.files import find_checkpoint, read_weights_file
from project.errors import UserError

TORCHVISION_PREFIX = "torchvision:"
DOWNLOADED_WEIGHTS = (TORCHVISION_PREFIX, TIMM_PREFIX)  # sources named, not files: downloaded where there is network


@dataclass(frozen=True)
class PretrainedBackbone:
    """Pretrained backbone weights and what they are: the architecture, the input they were trained under, and where
    they came from (provenance, recorded in every checkpoint of the run that uses them)."""

    source: str  # the resolved file, torchvision:<WEIGHTS> or timm:<name>
    sha256: str | None  # of the file; None for downloaded weights
    backbone: str
    backbone_args: dict[str, Any] | None
    input_shape: tuple[int, int, int] | None  # a pretraining run's (C, H, W); None: a library's weights
    state: dict[str, Tensor] = field(repr=False)  # a run's `backbone.` weights, or a whole library model's
    weights_input: WeightsInput | None = None  # None: a checkpoint that recorded no preprocessing
    pretraining: dict[str, Any] = field(default_factory=dict, repr=False)  # the run's hyperparameters and config

    @property
    def from_library(self) -> bool:
        """Whether the state is a library model's (torchvision, timm), not a run of this project's backbone."""
        return self.input_shape is None

    @classmethod
    def open(
        cls, location: str, backbone: str | None = None, backbone_args: dict[str, Any] | None = None,
        expected_sha256: str | None = None,
    ) -> "PretrainedBackbone":
        """Read the source `location`; `backbone`, `backbone_args` are the config's (None: take the source's)."""
        if location.startswith(TORCHVISION_PREFIX):
            weights = location.removeprefix(TORCHVISION_PREFIX)
            if backbone not in ZOO_ARCHITECTURES:
                raise UserError(f"{location!r} names torchvision weights but --model.backbone is {backbone!r}: set it "
                                f"to the torchvision architecture they are for, one of {list(ZOO_ARCHITECTURES)}")
            arch = backbone
            state = download_torchvision_weights(arch, weights)
            return cls(location, None, arch, backbone_args, None, state, torchvision_weights_input(arch, weights))
        if location.startswith(TIMM_PREFIX):
            checked_name(location)  # an unknown name says so, before any comparison with the config's backbone
            if backbone is not None and not same_architecture(backbone, location):
                raise UserError(f"--model.pretrained={location} holds a {location} backbone but --model.backbone is "
                                f"{backbone!r}: drop --model.backbone (it is read from the weights)")
            state = download_timm_weights(location)
            return cls(location, None, location, backbone_args, None, state, library_weights_input(location))
        path = find_checkpoint(location, "best")
        sha256 = checked_sha256(path, expected_sha256)
        content = read_weights_file(path)
        if isinstance(content, dict) and "state_dict" in content:  # a Lightning checkpoint of this project
            name, args, shape = run_architecture(content, path, backbone, backbone_args)
            prefix = "backbone."
            state = {k[len(prefix) :]: v for k, v in content["state_dict"].items() if k.startswith(prefix)}
            config_file = path.parent.parent / "config.yaml"  # <run>/checkpoints/x.ckpt -> <run>/config.yaml
            pretraining = {
                "pretraining_hparams": dict(content.get("hyper_parameters", {})),
                "pretraining_config": config_file.read_text() if config_file.is_file() else None,
                "pretraining_data": dict(content.get("datamodule_hyper_parameters", {})),
                "self_supervised": content.get("model_class") == "SimCLRPretraining",
            }
            return cls(str(path), sha256, name, args, shape, state, run_weights_input(content, path), pretraining)
        if isinstance(content, dict) and content and all(isinstance(v, Tensor) for v in content.values()):
            arch = library_architecture(backbone, str(path))
            default = library_weights_input(arch)  # a state dict records no input: the architecture's default weights'
            weights_input = replace(default, origin=f"{default.origin}, the default for a {arch} state-dict file")
            return cls(str(path), sha256, arch, backbone_args, None, content, weights_input)
        raise UserError(
            f"{str(path)!r} is neither a checkpoint of this project (no state_dict) nor a model's state dict: "
            f"give a pretraining run's checkpoint or a file saved with torch.save(model.state_dict(), ...)"
        )

    @property
    def provenance(self) -> dict[str, Any]:
        return {"pretrained_checkpoint": self.source, "sha256": self.sha256, **self.pretraining}

    def check_input_shape(self, input_shape: tuple[int, int, int], any_input_size: bool) -> None:
        """A pretraining run's weights take images of its channels, and of its size unless the backbone pools."""
        if self.input_shape is None:
            return
        same = tuple(self.input_shape) == tuple(input_shape)
        if same or (any_input_size and self.input_shape[0] == input_shape[0]):
            return
        channels, size, _ = self.input_shape
        raise UserError(
            f"{self.source!r} was pretrained on {tuple(self.input_shape)} (C, H, W) images but the data gives "
            f"{tuple(input_shape)}: if that is the wrong pretraining run (an experiment folder's newest one is "
            f"taken), point --model.pretrained at the right one; if it is the right one, adapt the data to it "
            f"with --data.channels={channels} --data.image_size={size}"
        )

    def copy_into(self, backbone: Backbone) -> str:
        """Copy the weights into `backbone`, strictly (a missing, unexpected or reshaped key is an error)."""
        if self.from_library:
            if not isinstance(backbone, LibraryBackbone):
                raise UserError(f"{self.source!r} holds a library model's weights, which a {type(backbone).__name__} "
                                f"cannot take: set --model.backbone to their architecture")
            return f"{backbone.load_library_state(self.state)} ({self.source})"
        assert isinstance(backbone, nn.Module)
        load_exactly(backbone, self.state, repr(self.source), "use a checkpoint of the same architecture")
        return f"{self.backbone}: {len(self.state)} pretrained tensors reused from {self.source}"


def library_architecture(backbone: str | None, source: str) -> str:
    """The configured library backbone (torchvision or timm) that a state dict without hyperparameters is for."""
    if not is_library_backbone(backbone):
        raise UserError(
            f"{source!r} is not a checkpoint of this project (it has no state_dict): if it is a torchvision or timm "
            f"model's state dict, set --model.backbone to its architecture, one of {list(ZOO_ARCHITECTURES)} or "
            f"{TIMM_PREFIX}<name>"
        )
    return backbone


def run_weights_input(checkpoint: dict[str, Any], path: Path) -> WeightsInput | None:
    """The normalization a pretraining run of this project trained its weights under, as its checkpoint records."""
    recorded = checkpoint.get("preprocessing")
    if not recorded or "mean" not in recorded:
        return None
    return WeightsInput(tuple(recorded["mean"]), tuple(recorded["std"]), recorded["input_shape"][1],
                        f"recorded by the pretraining run {path}")


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
