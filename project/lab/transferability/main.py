"""scripts/transferability.py: rank pretrained backbones for a target task in seconds, before any fine-tuning.

Each source's frozen features are scored on the target's labelled images (the label budget of the fine-tuning
config: its training and validation images, never the test split) next to the same architecture with random
weights: features no better than random ones are the sign, found the hard way on the digits pair, that
fine-tuning will at best tie training from scratch.
"""

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from jsonargparse import ArgumentParser

from project.backbones import build_backbone
from project.checkpoints.pretrained import PretrainedBackbone
from project.config.shipped import config_path, shipped_or_given
from project.data import ImageDataModule
from project.errors import UserError, exits_on_user_error
from project.evaluation.data_arguments import parse_with_data_defaults
from project.lab.transferability.scores import FeatureScores, score_features
from project.progress import Progress, showing_progress
from project.seeding import Stream, derived_seed
from project.training.input_from_weights import fill_data_from_weights

SCORE_NAMES = ("LogME", "k-NN acc", "probe acc")


@dataclass(frozen=True)
class SourceReport:
    source: str
    backbone: str
    pretrained: FeatureScores
    random: list[FeatureScores]  # one per random initialization
    labelled: tuple[int, int]  # (training, validation) labelled images

    def better_than_random(self) -> list[bool]:
        """Per score: is the pretrained one above every random initialization's?"""
        return [
            getattr(self.pretrained, field) > max(getattr(scores, field) for scores in self.random)
            for field in ("logme", "knn_accuracy", "probe_accuracy")
        ]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(exit_on_error=False, description=__doc__)
    parser.add_argument("--finetune_config", type=str, default=str(config_path("digits_finetune.yaml")),
                        help="the fine-tuning config that defines the target task (its data section)")
    parser.add_argument("--sources", type=list[str] | None, default=None,
                        help="checkpoints, run or experiment folders, torchvision or timm state-dict files (.pt or "
                        ".safetensors), torchvision:<WEIGHTS> or timm:<name> (default: the config's model.pretrained)")
    parser.add_argument("--random_inits", type=int, default=3, help="random initializations to compare with")
    parser.add_argument("--quiet", type=bool, default=False, help="no progress bars or progress lines")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initializations and the probe's CV")
    parser.add_class_arguments(ImageDataModule, "data")
    return parser


def main(args: list[str] | None = None) -> None:
    with exits_on_user_error():
        config = parse(build_parser(), sys.argv[1:] if args is None else args)
        start = time.perf_counter()
        with showing_progress(not config.quiet):
            reports = [check_source(source, config) for source in config.sources]
    print(ranked_table(reports))
    for report in sorted(reports, key=lambda r: r.pretrained.logme, reverse=True):
        print(verdict(report))
    print(f"scored in {time.perf_counter() - start:.1f} s")


def parse(parser: ArgumentParser, args: list[str]):
    """Parsed twice: first for --finetune_config, then with its data section (and model.pretrained) as defaults,
    so --data.* changes only what it names."""
    first = parser.parse_args(args)
    path = Path(shipped_or_given(first.finetune_config))
    if not path.is_file():
        raise UserError(f"--finetune_config {str(path)!r} does not exist: name a fine-tuning config file")
    finetune = yaml.safe_load(path.read_text()) or {}
    config = parse_with_data_defaults(parser, args, finetune.get("data") or {})
    model = finetune.get("model") or {}
    if config.sources == []:
        raise UserError("--sources '[]' names no source: give the backbones to score, or leave --sources out for the "
                        "fine-tuning config's model.pretrained")
    config.sources = config.sources or ([model["pretrained"]] if model.get("pretrained") else [])
    if not config.sources:
        raise UserError(f"{str(path)!r} names no model.pretrained: give the backbones to score with --sources")
    if config.random_inits < 1:
        raise UserError(f"--random_inits {config.random_inits} must be at least 1")
    config.backbone = model.get("backbone")  # what torchvision or timm weights are for
    config.model = model  # its normalization: the fine-tuning run's input is the one scored
    return config


def check_source(location: str, config) -> SourceReport:
    source = PretrainedBackbone.open(location, config.backbone)
    settings = config.data.as_dict()
    if source.input_shape is not None:  # the images the backbone was pretrained on
        settings["channels"], settings["image_size"] = source.input_shape[0], source.input_shape[1]
    # The input the fine-tuning run would give it (the weights' mean/std and size by default), random weights alike.
    fill_data_from_weights(settings, config.model, source.weights_input)
    data = ImageDataModule(**settings)
    check_not_trained_on_target(source, data)
    data.prepare_data()
    data.setup("fit")
    backbone = build_backbone(source.backbone, data.input_shape, source.backbone_args)
    source.copy_into(backbone)
    scores = []
    backbones = range(1 + config.random_inits)  # 0: the pretrained weights; then each random initialization
    for index in Progress(backbones, f"scoring pretrained + {config.random_inits} random", unit="backbone"):
        if index > 0:
            torch.manual_seed(derived_seed(config.seed, Stream.RANDOM_INIT, index - 1))
            backbone = build_backbone(source.backbone, data.input_shape, source.backbone_args)
        scores.append(score_features(backbone, data, config.seed))
    return SourceReport(source.source, source.backbone, scores[0], scores[1:], (len(data.train_set), len(data.val_set)))


def check_not_trained_on_target(source: PretrainedBackbone, data: ImageDataModule) -> None:
    """A source trained with the labels of the target's own classes, on the same data, would score its memory of
    them (a fine-tuning run of the target, or a pretraining config given as the target), not transfer."""
    trained_on = source.pretraining.get("pretraining_data") or {}
    hparams = source.pretraining.get("pretraining_hparams") or {}
    if not trained_on or "class_names" not in hparams or source.pretraining.get("self_supervised"):
        return
    same_data = trained_on.get("dataset") == data.hparams.dataset and (
        Path(str(trained_on.get("root"))).resolve() == Path(data.hparams.root).resolve())
    shared = sorted(set(hparams["class_names"]) & set(data.class_names))
    if same_data and shared:
        raise UserError(
            f"{source.source!r} was trained with the labels of {shared[:10]} of this very data "
            f"({data.hparams.dataset} at {data.hparams.root}): scoring it there measures what it memorized, not what "
            f"transfers; score a source trained on other classes or other data, against a fine-tuning config's target"
        )


def ranked_table(reports: list[SourceReport]) -> str:
    """Sources by LogME, best first, each followed by its architecture with random weights (mean ± std)."""
    train, val = reports[0].labelled
    lines = [
        f"| source ({train} training + {val} validation labelled images) | weights | " + " | ".join(SCORE_NAMES) + " |",
        "|---|---|---:|---:|---:|",
    ]
    for report in sorted(reports, key=lambda r: r.pretrained.logme, reverse=True):
        p = report.pretrained
        scores = f"{p.logme:.3f} | {p.knn_accuracy:.3f} | {p.probe_accuracy:.3f}"
        lines.append(f"| {report.source} | pretrained | {scores} |")
        cells = []
        for field in ("logme", "knn_accuracy", "probe_accuracy"):
            values = [getattr(scores, field) for scores in report.random]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}")
        random = f"random ×{len(report.random)}"
        lines.append(f"| {report.backbone}, same architecture | {random} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(report: SourceReport) -> str:
    better = report.better_than_random()
    if all(better):
        return (f"{report.source}: above every random initialization on all {len(better)} scores: its features "
                f"carry something for this target; fine-tuning from it is worth measuring (scripts/study.py)")
    worse = [name for name, ok in zip(SCORE_NAMES, better, strict=True) if not ok]
    return (f"FLAG {report.source}: not above every random initialization of the same architecture on "
            f"{', '.join(worse)} (within their spread or below): "
            f"expect fine-tuning from it to tie or lose to training from scratch")
