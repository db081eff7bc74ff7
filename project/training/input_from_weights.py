"""The fine-tuning data's input from the pretrained weights: their mean/std and their size become the data
config's defaults (timm's `resolve_data_config`: the model's `pretrained_cfg`, overridden by explicit settings).

Measured reasons (reported by users of timm and SimCLR): a timm ViT trained under mean/std 0.5 and fed ImageNet's
statistics scored 38 % instead of 57 % (mr-eggplant/FOA#2); CIFAR images fine-tuned far from the weights' 224 px
lost 15 points (google-research/simclr#7).
"""

from typing import Any

from lightning.pytorch.utilities import rank_zero_warn

from project.backbones import WeightsInput
from project.errors import UserError

FAR_FROM_TRAINED_SIZE = 1.5  # a factor either way: past it, the size is said to cost transfer accuracy


def fill_data_from_weights(data: Any, model: Any, weights: WeightsInput | None) -> str:
    """Set the data config's `mean`/`std` (unless set, or `model.normalization` is `target`) and its `image_size`
    (unless set) from `weights`; returns why the run's input is what it is, in words."""
    return f"{size_from_weights(data, weights)}, normalized with {normalization_from_weights(data, model, weights)}"


def size_from_weights(data: Any, weights: WeightsInput | None) -> str:
    """The weights' size as `image_size` unless one is set (warned about when far from theirs); says which."""
    size, trained = data["image_size"], None if weights is None else weights.image_size
    if trained is None:
        return "size: the images' own" if size is None else "size as set"
    if size is None:
        data["image_size"] = trained
        return "size: the weights'"
    if not 1 / FAR_FROM_TRAINED_SIZE <= size / trained <= FAR_FROM_TRAINED_SIZE:
        rank_zero_warn(
            f"--data.image_size={size} is far from the {trained} px the pretrained weights were trained at "
            f"({weights.origin}), which often costs transfer accuracy: unset it to take the weights' size, if the "
            f"time per epoch allows"
        )
    return f"size as set (the weights': {trained} px)"


def normalization_from_weights(data: Any, model: Any, weights: WeightsInput | None) -> str:
    """The weights' mean/std as the data's unless set, or the target's own is asked for; says which."""
    if data["mean"] is not None or data["std"] is not None:  # one without the other is refused by the data
        return "--data.mean/--data.std as set"
    if weights is None:
        return "the target images' own statistics (the pretrained source records none)"
    if model.get("normalization", "pretrained") == "target":
        return "the target images' own statistics (--model.normalization=target)"
    if data["channels"] is not None and len(weights.mean) == 1 < data["channels"]:
        # 1-channel weights on colour data: the model's own check names the channels to set
        return "the target images' own statistics (the weights' are of 1-channel images)"
    data["mean"], data["std"] = list(weights.mean), list(weights.std)
    return (f"the pretrained weights' statistics ({weights.origin}; --model.normalization=target for the target "
            f"images' own)")


def fill_data_from_checkpoint(data: Any, preprocessing: dict[str, Any] | None) -> str:
    """A resumed run takes the input its checkpoint was trained under, whatever this command leaves unset."""
    if not preprocessing:
        return "normalized with the data's own statistics (the resumed checkpoint records none)"
    channels, height, width = preprocessing["input_shape"]
    if data["channels"] not in (None, channels):  # another model: the resume check names the difference
        return "normalized with the data's own statistics (the resumed checkpoint's model takes other images)"
    if data["image_size"] is None and height == width:
        data["image_size"] = height
    for key in ("mean", "std"):
        if data[key] is not None and rounded(data[key]) != rounded(preprocessing[key]):
            raise UserError(f"--data.{key}={data[key]}: the resumed run trained under mean {preprocessing['mean']} "
                            f"std {preprocessing['std']}; leave --data.mean/--data.std out to keep them, or start a "
                            f"new run")
    data["mean"], data["std"] = list(preprocessing["mean"]), list(preprocessing["std"])
    return "size and normalization: the resumed checkpoint's (its run trained under them)"


def input_line(input_shape: tuple[int, int, int], mean: list[float], std: list[float], why: str) -> str:
    """The run's input, its values and why: what the run summary and the start of a run print."""
    channels, height, width = input_shape
    return f"{channels}×{height}×{width}, mean {rounded(mean)} std {rounded(std)}; {why}"


def rounded(values: list[float] | tuple[float, ...]) -> list[float]:
    return [round(value, 4) for value in values]
