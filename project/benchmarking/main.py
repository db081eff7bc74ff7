"""`scripts/benchmark.py`: one table, every path measured side by side in the same run, same model, data and seed."""

import sys
import tempfile
from pathlib import Path
from typing import Literal

import torch
import torchvision
from jsonargparse import ArgumentParser
from lightning.pytorch import seed_everything
from torch.utils.data import DataLoader
from torchvision import transforms

from project.benchmarking.data_sources import cifar_folder, mnist_root
from project.benchmarking.paths import MinimalModule, compute_only, lightning_fit, plain_loop, timed_rate
from project.benchmarking.whole_run import whole_run
from project.data import ImageDataModule
from project.errors import UserError, exits_on_user_error
from project.lightning_modules import ImageClassifier

SEED = 0
STEP_BATCH_SIZE = 128  # the step cases' batch, which the README's tables were measured at


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


def measure(case: str, device: str, scratch: Path, args) -> list[tuple[str, str, str, str]]:
    data, usual, source = case_setup(case, scratch, args)
    template = new_model(case, data)
    # One epoch at most, so every path sees the same batches (the 8,000-image MNIST sample has 62 of 128).
    n = min(args.batches, len(data.train_set) // args.batch_size)
    if n < 2:
        raise UserError(
            f"{case}: {len(data.train_set)} training images make {n} full batches of {args.batch_size}; "
            f"at least 2 are needed: lower --batch_size or raise --generated_size"
        )
    warm = min(args.warmup, n - 1)
    first_limit = compute_only(template, data, n, warm, device)

    seed_everything(SEED, verbose=False)
    default = lightning_fit(copy_of(template), n, warm, device, datamodule=data)
    default_rate = timed_rate(default, n, warm, args.batch_size)
    usual_rates = {}
    for workers in args.workers:
        loader = DataLoader(usual, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                            persistent_workers=workers > 0, pin_memory=device == "cuda")
        usual_run = lightning_fit(copy_of(template), n, warm, device, train_dataloaders=loader)
        usual_rates[workers] = timed_rate(usual_run, n, warm, args.batch_size)
    seed_everything(SEED, verbose=False)
    minimal_rate = timed_rate(lightning_fit(MinimalModule(copy_of(template)), n, warm, device, datamodule=data),
                              n, warm, args.batch_size)
    plain_rate, plain_losses = plain_loop(template, data, n, warm, device, SEED)
    # The limit is a best case: measured first and last, the faster one counts (a shared machine is noisy).
    limit = max(first_limit, compute_only(template, data, n, warm, device))

    equal = len(plain_losses) == len(default.losses) and all(
        round(a, 5) == round(b, 5) for a, b in zip(plain_losses, default.losses, strict=True)
    )
    rows = [
        ("1. compute only (preloaded normalized tensors)", f"{limit:,.0f}", "1.00", "best of two, first and last"),
        ("2. this project's default path, Lightning", f"{default_rate:,.0f}", f"{default_rate / limit:.2f}", ""),
    ]
    for workers, rate in usual_rates.items():
        rows.append((f"3. torchvision DataLoader + PIL transforms, {workers} workers, Lightning", f"{rate:,.0f}",
                     f"{rate / limit:.2f}", f"default path is {default_rate / rate:.2f}x faster"))
    rows.append(("4. same model and data, plain PyTorch loop", f"{plain_rate:,.0f}", f"{plain_rate / limit:.2f}",
                 f"Lightning/plain = {default_rate / plain_rate:.2f}; losses equal to 5 decimals "
                 f"over {len(plain_losses)} steps: {'yes' if equal else 'NO'}"))
    rows.append(("5. Lightning's floor: a minimal LightningModule, same data path", f"{minimal_rate:,.0f}",
                 f"{minimal_rate / limit:.2f}", f"minimal Lightning/plain = {minimal_rate / plain_rate:.2f}"))
    print(f"\n{case} on {device}: {source}, batch {args.batch_size}, {n - warm} timed batches after {warm} warm-up")
    return rows


def copy_of(model: ImageClassifier) -> ImageClassifier:
    clone = ImageClassifier(**model.hparams)
    clone.load_state_dict(model.state_dict())
    return clone


def print_table(rows: list[tuple[str, ...]], header: str = "| path | samples/s | × compute-only | notes |") -> None:
    print(f"{header}\n|---|" + "---:|" * (header.count("|") - 2))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(args: list[str] | None = None) -> None:
    parser = ArgumentParser(exit_on_error=False, description=__doc__)
    parser.add_argument("--cases", type=list[Literal["mlp_mnist", "cnn_cifar", "whole_run"]],
                        default=["mlp_mnist", "cnn_cifar", "whole_run"])
    parser.add_argument("--batches", type=int, default=120, help="training steps per path")
    parser.add_argument("--warmup", type=int, default=20, help="first steps not timed")
    parser.add_argument("--batch_size", type=int | None, default=None,
                        help="of every case (null: 128 for the step cases, the config's own for the whole run)")
    parser.add_argument("--workers", type=list[int], default=[0, 2], help="DataLoader workers of path 3")
    parser.add_argument("--mnist_root", type=str | None, default=None,
                        help="torchvision's MNIST files are under it (e.g. ../shared/data/mnist-sample)")
    parser.add_argument("--cifar_folder", type=str | None, default=None, help="a CIFAR-10 image folder")
    parser.add_argument("--cifar_archive", type=str | None, default=None,
                        help="a .tar.gz of one, extracted for the run (e.g. ../shared/data/cifar10-train-jpg.tar.gz)")
    parser.add_argument("--generated_size", type=int, default=5000, help="images generated where no data is given")
    parser.add_argument("--whole_run_epochs", type=int, default=3, help="epochs of the whole-run case's runs")
    parser.add_argument("--devices", type=list[Literal["cpu", "cuda"]] | None, default=None,
                        help="where to measure (default: the CPU, and the GPU when there is one)")
    with exits_on_user_error():
        config = parser.parse_args(sys.argv[1:] if args is None else args)
        if config.batch_size is not None and config.batch_size < 1:
            raise UserError(f"--batch_size {config.batch_size} must be at least 1 (null: each case's own)")
        whole_run_batch_size = config.batch_size  # None: the real command's, as the config says
        config.batch_size = config.batch_size or STEP_BATCH_SIZE
        if not 0 <= config.warmup < config.batches:
            raise UserError(f"--warmup {config.warmup} must be at least 0 and below --batches {config.batches}")
        devices = config.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
        if "cuda" in devices and not torch.cuda.is_available():
            raise UserError("--devices asks for cuda, but this machine has no usable CUDA GPU")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices: {', '.join(devices)}")
        with tempfile.TemporaryDirectory() as scratch:
            for device in devices:
                for case in config.cases:
                    if case == "whole_run":
                        folder, _ = cifar_folder(Path(scratch), config.cifar_folder, config.cifar_archive,
                                                 config.generated_size)
                        rows = whole_run(
                            folder, config.whole_run_epochs, whole_run_batch_size, Path(scratch) / device, device
                        )
                        print_table(rows, "| phase | first run (decodes), s | second run (decode cache), s |")
                    else:
                        print_table(measure(case, device, Path(scratch), config))
