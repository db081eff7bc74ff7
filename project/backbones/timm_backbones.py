"""Backbones from timm (the optional `timm` extra): `timm:<name>` is any architecture timm can create, with a
pretrained tag or not (`timm:convnext_atto`, `timm:convnext_atto.d2_in1k`); its weights come in as a pretrained
source, `timm:<name>` (downloaded) or a state dict saved from timm (offline).

The blocks, the classifier, the first convolution and the input the weights were trained under are all read
from timm's own description of the model (`group_matcher`, `pretrained_cfg`), never from its name.
"""

import logging
from typing import Any

import torch
from torch import Tensor, nn

from project.backbones.contract import WeightsInput
from project.backbones.exact_load import load_exactly
from project.errors import UserError

PREFIX = "timm:"


def import_timm() -> Any:
    """timm, or a one-line error naming the extra that installs it."""
    try:
        import timm  # optional: only timm backbones need it
    except ImportError as error:
        raise UserError(
            "timm backbones need timm, which is not installed: pip install -e '.[timm]' (or pip install timm)"
        ) from error
    return timm


def checked_name(name: str) -> str:
    """timm's model name in `timm:<name>`, known to timm."""
    timm = import_timm()
    model_name = name.removeprefix(PREFIX)
    if not timm.is_model(model_name):
        raise UserError(
            f"timm has no model {model_name!r} (from {name!r}): name one as timm.list_models() does, optionally with "
            f"a pretrained tag, e.g. timm:resnet18 or timm:convnext_atto.d2_in1k"
        )
    architecture, tag = timm.models.split_model_name_tag(model_name)
    tagged = timm.list_pretrained(f"{architecture}.*")
    if tag and model_name not in tagged:
        raise UserError(f"timm has no pretrained tag {tag!r} for {architecture}: choose one of {tagged[:8]} "
                        f"(timm.list_pretrained('{architecture}.*')), or leave the tag out for the default")
    return model_name


def same_architecture(name: str, other: str) -> bool:
    """Whether two `timm:` names are one architecture, whatever their pretrained tags."""
    if not (name.startswith(PREFIX) and other.startswith(PREFIX)):
        return False
    split = import_timm().models.split_model_name_tag
    return split(name.removeprefix(PREFIX))[0] == split(other.removeprefix(PREFIX))[0]


class TimmBackbone(nn.Module):
    """A timm model created without its classifier (`num_classes=0`): pooled features, `out_features` of them.
    `model_args` go to `timm.create_model` (e.g. `drop_path_rate`)."""

    def __init__(self, input_shape: tuple[int, int, int], name: str, **model_args: Any) -> None:
        super().__init__()
        timm = import_timm()
        self.name, self.input_shape = name, tuple(input_shape)
        self.model = timm.create_model(checked_name(name), pretrained=False, num_classes=0, in_chans=input_shape[0],
                                       **model_args)
        config = self.model.pretrained_cfg
        self.any_input_size = not config.get("fixed_input_size", False) or bool(model_args.get("dynamic_img_size"))
        self.out_features = pooled_size(self.model, name, self.input_shape, tuple(config["input_size"][1:]))
        self.block_paths = block_paths(self.model)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def blocks(self) -> list[nn.Module]:
        """timm's coarse parameter groups (`group_matcher(coarse=True)`: stem, stages, final norm), each as the
        largest modules whose parameters all belong to it."""
        modules = [[self.model.get_submodule(path) for path in paths] for paths in self.block_paths]
        return [parts[0] if len(parts) == 1 else nn.ModuleList(parts) for parts in modules]

    def weights_input(self) -> WeightsInput:
        return weights_input(self.name)

    def load_library_state(self, state: dict[str, Tensor]) -> str:
        """Load a state dict saved from timm (`timm.create_model(name, pretrained=True).state_dict()`, with its
        classifier or without); a 3-channel stem is adapted to 1-channel data by timm's `adapt_input_conv`."""
        from timm.models import adapt_input_conv

        config = self.model.pretrained_cfg
        classifiers = as_tuple(config.get("classifier"))
        state = {key: value for key, value in state.items()
                 if not any(key.startswith(f"{name}.") for name in classifiers)}
        own = self.model.state_dict()
        adapted = []
        for conv in as_tuple(config.get("first_conv")):
            key = f"{conv}.weight"
            if key in state and key in own and state[key].shape[1] != own[key].shape[1]:
                state[key] = adapt_input_conv(own[key].shape[1], state[key])
                adapted.append(conv)
        load_exactly(self.model, state, f"the weights for timm's {self.name.removeprefix(PREFIX)}",
                     "save the state dict of the same architecture, or set --model.backbone to the weights' own")
        return (f"{self.name}: {len(state)} pretrained tensors reused"
                f"{f'; the stem {adapted[0]} adapted to {self.input_shape[0]} channels' if adapted else ''}; "
                f"its classifier removed, a new head follows")


def pooled_size(model: nn.Module, name: str, input_shape: tuple[int, int, int], trained: tuple[int, int]) -> int:
    """The number of features `model` returns for one image of `input_shape`, measured by a dry run (timm's
    `num_features` is not it where a head adds a hidden layer, e.g. MobileNetV3's 1024; `head_hidden_size` is not
    set by every model): also where it refuses the size, or does not pool, it says so now, not at the first step."""
    try:
        with torch.no_grad():
            features = model.eval()(torch.zeros(1, *input_shape))
    except (RuntimeError, AssertionError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"{name} cannot take {input_shape[1]}×{input_shape[2]} images ({reason[:200]}): it was made "
                        f"for {trained[0]}×{trained[1]}; set --data.image_size={trained[0]}, or leave it unset to take "
                        f"the weights' size") from error
    finally:
        model.train()
    if features.ndim != 2:
        raise UserError(f"{name} returns features of shape {tuple(features.shape[1:])} per image, not pooled ones: "
                        f"leave its global_pool at timm's default (a backbone here returns one vector per image)")
    return features.shape[1]


def block_paths(model: nn.Module) -> list[list[str]]:
    """The module paths of each of timm's coarse groups, in input-to-output order (found once: the grouping
    matches every parameter name against timm's patterns)."""
    from timm.models import group_parameters

    groups = group_parameters(model, model.group_matcher(coarse=True))
    group_of = {name: index for index, names in groups.items() for name in names}
    paths: dict[Any, list[str]] = {index: [] for index in groups}
    for path, module in model.named_modules():
        inside_taken = any(path.startswith(f"{outer}.") for taken in paths.values() for outer in taken)
        if not path or inside_taken:
            continue
        owners = {group_of[name] for name, _ in module.named_parameters(prefix=path)}
        if len(owners) == 1:
            paths[owners.pop()].append(path)
    return [group for _, group in sorted(paths.items()) if group]


def weights_input(name: str) -> WeightsInput:
    """The input timm's pretrained weights for `name` were trained under (its `pretrained_cfg`: the tag's, or the
    default tag's when `name` has none)."""
    timm = import_timm()
    model_name = checked_name(name)
    config = timm.models.get_pretrained_cfg(model_name)
    if config is None:  # an architecture with no published weights: timm's own defaults
        data = timm.data.resolve_data_config(pretrained_cfg={})
        return WeightsInput(tuple(data["mean"]), tuple(data["std"]), None, f"timm's defaults ({model_name} has "
                            f"no pretrained_cfg)")
    data = timm.data.resolve_data_config(pretrained_cfg=config.to_dict())
    tag = f"{config.architecture}.{config.tag}" if config.tag else config.architecture
    return WeightsInput(tuple(data["mean"]), tuple(data["std"]), data["input_size"][1], f"timm {tag} pretrained_cfg")


def download_timm_weights(name: str) -> dict[str, Tensor]:
    """The state dict of timm's pretrained weights for `name` (downloaded once into the Hugging Face cache)."""
    timm = import_timm()
    model_name = checked_name(name)
    hub_log = logging.getLogger("huggingface_hub")  # its retry lines, one per attempt, would bury our one line
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        model = timm.create_model(model_name, pretrained=True, num_classes=0)
    except Exception as error:  # the hub's connection and offline errors, or a tag without weights
        raise UserError(
            f"could not get timm's pretrained weights for {model_name} ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:200]}); without network, save them on a machine with one "
            f"(torch.save(timm.create_model('{model_name}', pretrained=True).state_dict(), 'file.pt')) and pass "
            f"--model.pretrained=file.pt --model.backbone=timm:{model_name}"
        ) from error
    finally:
        hub_log.setLevel(level)
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def as_tuple(value: str | list | tuple | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)

