"""The fine-tuning data's input from the pretrained weights: their mean/std and their size become the data
config's defaults (timm's `resolve_data_config`: the model's `pretrained_cfg`, overridden by explicit settings).

Measured reasons (reported by users of timm and SimCLR): a timm ViT trained under mean/std 0.5 and fed ImageNet's
statistics scored 38 % instead of 57 % (mr-eggplant/FOA#2); CIFAR images fine-tuned far from the weights' 224 px
lost 15 points (google-research/simclr#7).
"""

from typing import Any

from lightning.pytorch.utilities import rank_zero_warn

from project.backbones import WeightsInput

FAR_FROM_TRAINED_SIZE = 1.5  # a factor either way: past it, the size is said to cost transfer accuracy


def fill_data_from_weights(data: Any, model: Any, weights: WeightsInput | None) -> str:
    """Set the data config's `mean`/`std` (unless set, or `model.normalization` is `target`) and its `image_size`
    (unless set) from `weights`; returns one line saying what the run's input is."""
    size_note = ""
    if weights is not None and weights.image_size is not None:
        if data["image_size"] is None:
            data["image_size"] = weights.image_size
            size_note = f", {weights.image_size}×{weights.image_size} px (the weights' size)"
        elif not 1 / FAR_FROM_TRAINED_SIZE <= data["image_size"] / weights.image_size <= FAR_FROM_TRAINED_SIZE:
            rank_zero_warn(
                f"--data.image_size={data['image_size']} is far from the {weights.image_size} px the pretrained "
                f"weights were trained at ({weights.origin}), which often costs transfer accuracy: unset it to take "
                f"the weights' size, if the time per epoch allows"
            )
    if data["mean"] is not None:
        return f"normalized with --data.mean={data['mean']} --data.std={data['std']} (as set){size_note}"
    if weights is None:
        return f"normalized with the target images' own mean/std (the pretrained source records none){size_note}"
    if model.get("normalization", "pretrained") == "target":
        return f"normalized with the target images' own mean/std (--model.normalization=target){size_note}"
    data["mean"], data["std"] = list(weights.mean), list(weights.std)
    return (f"normalized with the pretrained weights' mean {rounded(weights.mean)} std {rounded(weights.std)} "
            f"({weights.origin}; --model.normalization=target for the target images' own){size_note}")


def fill_data_from_checkpoint(data: Any, preprocessing: dict[str, Any] | None) -> str:
    """A resumed run takes the input its checkpoint was trained under, whatever this command leaves unset."""
    if not preprocessing:
        return "normalized as the data's own statistics (the resumed checkpoint records none)"
    channels, height, width = preprocessing["input_shape"]
    if data["channels"] not in (None, channels):  # another model: the resume check names the difference
        return "normalized as the data's own statistics (the resumed checkpoint's model takes other images)"
    if data["image_size"] is None and height == width:
        data["image_size"] = height
    if data["mean"] is None:
        data["mean"], data["std"] = list(preprocessing["mean"]), list(preprocessing["std"])
    return (f"normalized with mean {rounded(data['mean'])} std {rounded(data['std'])}, the resumed checkpoint's "
            f"(its run trained under them)")


def rounded(values: list[float] | tuple[float, ...]) -> list[float]:
    return [round(value, 4) for value in values]
