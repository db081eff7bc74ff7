"""`scripts/backbone_benchmark.py`: seconds per fine-tuning epoch of library backbones at the input sizes a config
might choose, measured side by side in one run (random weights: the time does not depend on their values).

Two numbers per row, for the two phases of LP-FT: a frozen backbone (features without gradients, the linear probe)
and full fine-tuning (forward, backward and an SGD step of everything). Batches are normalized random images
already in memory, so the table shows the model's cost, not decoding.
"""

import sys
import time

import torch
from jsonargparse import ArgumentParser
from torch import nn

from project.backbones import build_backbone
from project.errors import UserError, exits_on_user_error

DEFAULT_CASES = [
    "resnet18@224", "resnet18@160", "resnet18@128", "resnet18@64", "timm:convnext_atto@224", "timm:convnext_atto@160",
    "mobilenet_v3_small@224", "efficientnet_b0@224",
]


def main(args: list[str] | None = None) -> None:
    parser = ArgumentParser(exit_on_error=False, description=__doc__)
    parser.add_argument("--cases", type=list[str], default=DEFAULT_CASES,
                        help="backbone@size, the backbone as --model.backbone names it")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per case (after one warm-up step)")
    parser.add_argument("--epoch_images", type=int, default=1000, help="the epoch the seconds are given for")
    with exits_on_user_error():
        config = parser.parse_args(sys.argv[1:] if args is None else args)
        if config.batch_size < 2 or config.steps < 1 or config.epoch_images < 1:
            raise UserError("--batch_size must be at least 2 (BatchNorm's training statistics need two images), "
                            "--steps and --epoch_images at least 1")
        if not config.cases:
            raise UserError("--cases '[]' names no backbone: give backbone@size entries, or leave --cases out")
        cases = [parse_case(case) for case in config.cases]
    torch.manual_seed(0)
    print(f"| backbone | size | frozen (probe) s / {config.epoch_images:,} images | full fine-tuning s / "
          f"{config.epoch_images:,} images | full / frozen |")
    print("|---|---:|---:|---:|---:|")
    for name, size in cases:
        with exits_on_user_error():
            backbone = build_backbone(name, (3, size, size))
        frozen, full = (seconds_per_image(backbone, size, config.batch_size, config.steps, train)
                        for train in (False, True))
        images = config.epoch_images
        print(f"| {name} | {size} | {frozen * images:.1f} | {full * images:.1f} | {full / frozen:.1f}× |", flush=True)


def parse_case(case: str) -> tuple[str, int]:
    name, _, size = case.rpartition("@")
    if not name or not size.isdigit() or int(size) < 16:
        raise UserError(f"--cases entry {case!r}: write backbone@size with a size of 16 or more, e.g. resnet18@160")
    return name, int(size)


def seconds_per_image(backbone: nn.Module, size: int, batch_size: int, steps: int, train: bool) -> float:
    """Median seconds per image of one step: features without gradients (frozen) or a whole training step."""
    head = nn.Linear(backbone.out_features, 10)
    optimizer = torch.optim.SGD([*backbone.parameters(), *head.parameters()], lr=1e-3, momentum=0.9)
    images, labels = torch.randn(batch_size, 3, size, size), torch.randint(0, 10, (batch_size,))
    times = []
    for step in range(steps + 1):  # the first is a warm-up (allocations, kernel choice)
        start = time.perf_counter()
        if train:
            backbone.train()
            loss = nn.functional.cross_entropy(head(backbone(images)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        else:
            backbone.eval()
            with torch.no_grad():
                head(backbone(images))
        if step:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] / batch_size
