"""`scripts/benchmark.py`: one table, every path side by side in interleaved rounds, same model, data and seed."""

import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
import torchvision
from jsonargparse import ArgumentParser
from lightning.pytorch import LightningModule, seed_everything
from torch.utils.data import DataLoader
from torchvision import transforms

from project.checkpoints.output_files import replace_file, write_new_file
from project.data import ImageDataModule
from project.errors import UserError, exits_on_user_error
from project.lab.benchmarking.data_sources import cifar_folder, mnist_root
from project.lab.benchmarking.machine_noise import noise_line
from project.lab.benchmarking.paths import (
    MinimalModule,
    compute_rate,
    lightning_fit,
    plain_loop,
    prepared_batches,
)
from project.lab.benchmarking.rounds import interval_widths, one_round, paired, pinned, spread, step_ratios
from project.lab.benchmarking.whole_run import decoding, whole_run
from project.models import ImageClassifier

SEED = 0
STEP_BATCH_SIZE = 128  # the step cases' batch, which the README's tables were measured at
Result = tuple[float, list[float]]  # one timed run of a path: samples/s, each step's loss
Paths = dict[str, Callable[[], Result]]  # path name -> a call that trains a fresh copy of the model once


def case_setup(case: str, scratch: Path, args) -> tuple[ImageDataModule, torch.utils.data.Dataset, str]:
    """The DataModule of this project's default path and the usual torchvision dataset, over the same images."""
    if case == "mlp_mnist":
        root, source = mnist_root(scratch, args.mnist_root, args.generated_size)
        data = ImageDataModule("mnist", root=root, download=False, val_fraction=0.0, batch_size=args.batch_size)
        data.setup()
        mean, std = data.mean.tolist(), data.std.tolist()
        usual = torchvision.datasets.MNIST(
            root, train=True, transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
        )
        return data, usual, source
    folder, source = cifar_folder(scratch, args.cifar_folder, args.cifar_archive, args.generated_size)
    data = ImageDataModule(
        "imagefolder", root=folder, val_fraction=0.0, test_fraction=0.01, augment=True, batch_size=args.batch_size,
        cache_dir=str(scratch / "cache"),
    )
    data.setup()
    mean, std = data.mean.tolist(), data.std.tolist()
    usual = torchvision.datasets.ImageFolder(folder, transform=transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ]))
    return data, usual, source


def new_model(case: str, data: ImageDataModule) -> ImageClassifier:
    seed_everything(SEED, verbose=False)
    return ImageClassifier(
        backbone="mlp" if case == "mlp_mnist" else "cnn", num_classes=data.num_classes, input_shape=data.input_shape,
        optimizer="sgd", lr=0.01, momentum=0.9, nesterov=False, weight_decay=0.0, scheduler="none",
    )


def measure(case: str, device: str, scratch: Path, args) -> tuple[list[tuple[str, str, str, str]], list[dict]]:
    """The case's table rows, and every round's samples/s by path."""
    data, usual, source = case_setup(case, scratch, args)
    template = new_model(case, data)
    n, warm = case_batches(case, args), args.warmup
    paths = case_paths(template, data, usual, n, warm, device, args)
    ratios = step_ratios(paths)
    rounds = interleaved_rounds(paths, args.repeats, lambda done: pinned(done, ratios, args.precision),
                                args.max_minutes * 60)
    # Every round's plain loop and default path against the first round's plain loop: the same losses show the
    # paths train the same model, and every round starts from the same weights.
    equal = [all(same_losses(rounds[0]["plain"][1], each[name][1]) for name in ("plain", "default")) for each in rounds]

    def row(label: str, name: str, note: str = "") -> tuple[str, str, str, str]:
        return label, spread([each[name][0] for each in rounds], ",.0f"), paired(rounds, name, "compute"), note

    rows = [
        row("1. compute only (preloaded normalized tensors)", "compute",
            "the limit: each round's rates are divided by its own"),
        row("2. this project's default path, Lightning", "default"),
    ]
    for workers in args.workers:
        name = f"torchvision {workers}"
        rows.append(row(f"3. torchvision DataLoader + PIL transforms, {workers} workers, Lightning", name,
                        f"default/torchvision = {paired(rounds, 'default', name)}"))
    rows.append(row("4. same model and data, plain PyTorch loop", "plain",
                    f"Lightning/plain = {paired(rounds, 'default', 'plain')}; losses equal to 5 decimals over "
                    f"{n} steps, in {sum(equal)} of {len(equal)} rounds: {'yes' if all(equal) else 'NO'}"))
    rows.append(row("5. Lightning's floor: a minimal LightningModule, same data path", "minimal",
                    f"minimal Lightning/plain = {paired(rounds, 'minimal', 'plain')}"))
    passes = n / math.ceil(len(data.train_set) / args.batch_size)
    print(f"\n{case} on {device}: {source}, batch {args.batch_size}, {n - warm} timed steps after {warm} warm-up "
          f"({passes:.2g} passes over the {len(data.train_set):,} training images); "
          f"median of {len(rounds)} interleaved rounds: samples/s (min–max), each ratio taken within a round (the "
          f"median's 95 % interval); {precision_verdict(rounds, ratios, args.precision)}")
    return rows, [{name: rate for name, (rate, _) in each.items()} for each in rounds]


def case_paths(
    template: ImageClassifier, data: ImageDataModule, usual: torch.utils.data.Dataset, n: int, warm: int, device: str,
    args,
) -> Paths:
    """Each path as one call that trains a fresh copy of `template` and returns (samples/s, each step's loss)."""
    prepared = prepared_batches(data, n, device)  # built once; every round's compute-only trains on the same

    def compute() -> Result:
        return compute_rate(template, prepared, n, warm, device), []

    def lightning(model: LightningModule, **data_args) -> Result:
        seed_everything(SEED, verbose=False)
        stopwatch = lightning_fit(model, n, warm, device, **data_args)
        return stopwatch.rate, stopwatch.losses

    def usual_path(workers: int) -> Callable[[], Result]:
        def run() -> Result:
            loader = DataLoader(usual, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                                persistent_workers=workers > 0, pin_memory=device == "cuda")
            return lightning(copy_of(template), train_dataloaders=loader)
        return run

    return {
        "compute": compute,
        "default": lambda: lightning(copy_of(template), datamodule=data),
        **{f"torchvision {workers}": usual_path(workers) for workers in args.workers},
        "plain": lambda: plain_loop(template, data, n, warm, device, SEED),
        "minimal": lambda: lightning(MinimalModule(copy_of(template)), datamodule=data),
    }


MAX_ROUNDS = 60
# The MLP's step takes 1-2 ms on 2 CPU cores: 40 timed steps were 60-100 ms a path, a few timeslices of the scheduler;
# 280 timed steps (about 5 passes over the 8,000-image MNIST sample) are 0.3-0.5 s a fast path. On the busy VM of
# 2026-12-07 the longer window did not narrow the MLP's ratios measurably (pairs 5 and 6 in docs/performance.md: that
# VM's noise is as large at every time scale, see machine_noise.py). The CNN's step takes about 0.1 s: 40 timed steps
# are 4 s a path already.
DEFAULT_BATCHES = {"mlp_mnist": 300, "cnn_cifar": 60}


# The fewest generated images a case runs on: one a class for the step cases (10 classes), ten a class for the whole
# run, whose config holds out 10 % of each class for validation (fewer leave the split empty).
FEWEST_GENERATED = {"mlp_mnist": 10, "cnn_cifar": 10, "whole_run": 100}


def fewest_generated(args) -> int:
    """The fewest --generated_size the chosen cases need where their data is generated (0: none is)."""
    generated = [case for case in args.cases if (args.mnist_root if case == "mlp_mnist" else
                                                 args.cifar_folder or args.cifar_archive) is None]
    return max((FEWEST_GENERATED[case] for case in generated), default=0)


def case_batches(case: str, args) -> int:
    """The training steps of each path and round of `case`."""
    return DEFAULT_BATCHES[case] if args.batches is None else args.batches


def interleaved_rounds(
    paths: Paths, repeats: int, settled: Callable[[list[dict[str, Result]]], bool] = lambda rounds: True,
    max_seconds: float = 0.0,
) -> list[dict[str, Result]]:
    """Every path once per round, each round in its own seeded order (see rounds.py): each round's results.
    At least `repeats` rounds, then more until `settled` says the rounds are enough (every ratio pinned), or no
    round is started after `max_seconds` (or MAX_ROUNDS). On a busy 2-core VM (2026-12-07) a round's ratio moved
    ±10-15 % from round to round, and two runs of 9 rounds (30 for the MLP, whose timings are short) had medians up
    to 18 % apart: a fixed count of rounds is enough on one day and not on another."""
    rounds: list[dict[str, Result]] = []
    start = time.perf_counter()
    while len(rounds) < repeats or (
        len(rounds) < MAX_ROUNDS and time.perf_counter() - start < max_seconds and not settled(rounds)
    ):
        rounds.append(one_round(paths, len(rounds)))
    return rounds


def precision_verdict(rounds: list[dict[str, Result]], ratios: list[tuple[str, str]], precision: float) -> str:
    """Whether every ratio is pinned within `precision`, for the reader deciding whether to trust it."""
    if pinned(rounds, ratios, precision):
        return f"every ratio's interval within {precision:.0%}"
    (top, bottom), widest = max(interval_widths(rounds, ratios).items(), key=lambda item: item[1])
    return (f"NOT every ratio's interval within {precision:.0%} (the widest, {top} / {bottom}: {widest:.0%}): "
            f"the machine was busy; rerun, or raise --max_minutes")


def same_losses(plain: list[float], lightning: list[float]) -> bool:
    return len(plain) == len(lightning) and all(
        round(a, 5) == round(b, 5) for a, b in zip(plain, lightning, strict=True)
    )


def copy_of(model: ImageClassifier) -> ImageClassifier:
    clone = ImageClassifier(**model.hparams)
    clone.load_state_dict(model.state_dict())
    return clone


def print_table(rows: list[tuple[str, ...]], header: str = "| path | samples/s | × compute-only | notes |") -> None:
    print(f"{header}\n|---|" + "---:|" * (header.count("|") - 2))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def claim_rounds_file(path: Path) -> None:
    """Take the name `path` for this run's rounds, written whole (an empty record) so a kill leaves valid JSON; an
    existing file is never written over (an earlier run's rounds are what a comparison needs)."""
    if not path.absolute().parent.is_dir():
        raise UserError(f"--rounds_file {path}: its folder does not exist; create it, or name another file")
    try:
        write_new_file(path, lambda partial: partial.write_text("{}\n"))
    except FileExistsError:
        raise UserError(f"--rounds_file {path} exists already: name a new file (the benchmark never writes over "
                        f"one)") from None


def main(args: list[str] | None = None) -> None:
    parser = ArgumentParser(exit_on_error=False, description=__doc__)
    parser.add_argument("--cases", type=list[Literal["mlp_mnist", "cnn_cifar", "whole_run"]],
                        default=["mlp_mnist", "cnn_cifar", "whole_run"])
    parser.add_argument("--batches", type=int | None, default=None,
                        help="training steps per path and round, over as many passes of the data as they take "
                             "(null: 300 for the MLP, 60 for the CNN)")
    parser.add_argument("--warmup", type=int, default=20, help="first steps not timed")
    # 9 rounds: two runs back to back on a quiet 2-core VM agreed within 5 % on every step ratio but one (8 %); 5
    # rounds, up to 8 % on several (2026-12-07). 9 are also the fewest whose median has a 96 % interval short of
    # the extremes (rounds.py).
    parser.add_argument("--repeats", type=int, default=9,
                        help="rounds of every path, interleaved, at least; each row is the median over them")
    parser.add_argument("--precision", type=float, default=0.05,
                        help="then more rounds until every ratio's 95 % interval is this narrow (0.05: high/low "
                             "at most 1.05), within --max_minutes")
    parser.add_argument("--max_minutes", type=float, default=8.0,
                        help=f"a step case starts no new round after this many minutes, once it has --repeats "
                             f"(and none after {MAX_ROUNDS} rounds)")
    parser.add_argument("--noise_seconds", type=float, default=10.0,
                        help="first, time the same work this long to say how still the machine is (0: skip)")
    parser.add_argument("--batch_size", type=int | None, default=None,
                        help="of every case (null: 128 for the step cases, the config's own for the whole run)")
    parser.add_argument("--workers", type=list[int], default=[0, 2], help="DataLoader workers of path 3")
    parser.add_argument("--mnist_root", type=str | None, default=None,
                        help="torchvision's MNIST files are under it (e.g. ../shared/data/mnist-sample)")
    parser.add_argument("--cifar_folder", type=str | None, default=None, help="a CIFAR-10 image folder")
    parser.add_argument("--cifar_archive", type=str | None, default=None,
                        help="a .tar.gz of one, extracted for the run (e.g. ../shared/data/cifar10-train-jpg.tar.gz)")
    parser.add_argument("--generated_size", type=int, default=5000, help="images generated where no data is given")
    # 1 epoch: the case is 1 + 3 runs now (a cold one, then rounds), where it was 2 runs of 3 epochs.
    parser.add_argument("--whole_run_epochs", type=int, default=1, help="epochs of the whole-run case's runs")
    parser.add_argument("--whole_run_rounds", type=int, default=3,
                        help="rounds of the whole-run case (a cached run and its compute) and of the folder's decoding")
    parser.add_argument("--rounds_file", type=str | None, default=None,
                        help="also write every round's timings there, as JSON (to recompute any figure)")
    parser.add_argument("--devices", type=list[Literal["cpu", "cuda"]] | None, default=None,
                        help="where to measure (default: the CPU, and the GPU when there is one)")
    with exits_on_user_error():
        config = parser.parse_args(sys.argv[1:] if args is None else args)
        if config.batch_size is not None and config.batch_size < 1:
            raise UserError(f"--batch_size {config.batch_size} must be at least 1 (null: each case's own)")
        whole_run_batch_size = config.batch_size  # None: the real command's, as the config says
        config.batch_size = config.batch_size or STEP_BATCH_SIZE
        if config.repeats < 1:
            raise UserError(f"--repeats {config.repeats} must be at least 1 (9, the default, is what the tables use)")
        if config.whole_run_rounds < 1 or config.whole_run_epochs < 1:
            raise UserError(f"--whole_run_rounds {config.whole_run_rounds} and --whole_run_epochs "
                            f"{config.whole_run_epochs} must each be at least 1")
        if config.noise_seconds < 0:
            raise UserError(f"--noise_seconds {config.noise_seconds} must be at least 0 (0: no noise check)")
        if config.precision <= 0 or config.max_minutes < 0:
            raise UserError(f"--precision {config.precision} must be above 0 and --max_minutes {config.max_minutes} "
                            f"at least 0 (0: --repeats rounds)")
        if config.batches is not None and config.batches < 1:
            raise UserError(f"--batches {config.batches} must be at least 1 (null: each case's own)")
        for case in [case for case in config.cases if case != "whole_run"]:
            if not 0 <= config.warmup < case_batches(case, config):
                raise UserError(f"--warmup {config.warmup} must be at least 0 and below {case}'s "
                                f"--batches {case_batches(case, config)}")
        if config.generated_size < fewest_generated(config):
            raise UserError(f"--generated_size {config.generated_size} is too few for --cases {config.cases}: at least "
                            f"{fewest_generated(config)} (one image a class for a step case, ten a class for the "
                            f"whole run's 10 % validation split)")
        if config.rounds_file:  # claimed before any timing: a name taken or a folder not writable is one line now
            claim_rounds_file(Path(config.rounds_file))
        devices = config.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
        if "cuda" in devices and not torch.cuda.is_available():
            raise UserError("--devices asks for cuda, but this machine has no usable CUDA GPU")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices: {', '.join(devices)}")
        if config.noise_seconds:
            print(noise_line(config.noise_seconds, config.precision))
        timings = {}  # "case on device" -> every round's timings
        with tempfile.TemporaryDirectory() as scratch:
            for device in devices:
                for case in config.cases:
                    if case == "whole_run":
                        folder, _ = cifar_folder(Path(scratch), config.cifar_folder, config.cifar_archive,
                                                 config.generated_size)
                        rows, timings[f"whole_run on {device}"] = whole_run(
                            folder, config.whole_run_epochs, whole_run_batch_size, Path(scratch) / device, device,
                            config.whole_run_rounds)
                        print_table(rows, "| phase | first run (decodes), s | runs reading the decode cache, s |")
                        if device == devices[0]:  # decoding is on the CPU whatever the device
                            rows, timings["decoding"] = decoding(folder, config.whole_run_rounds)
                            print_table(rows, "| decoding | images/s | × PIL alone |")
                    else:
                        rows, timings[f"{case} on {device}"] = measure(case, device, Path(scratch), config)
                        print_table(rows)
                    if config.rounds_file:  # after every case, so an interrupted benchmark keeps what it measured
                        replace_file(Path(config.rounds_file),
                                     lambda path: path.write_text(json.dumps(timings, indent=1) + "\n"))
