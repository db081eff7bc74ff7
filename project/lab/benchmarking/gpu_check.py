"""scripts/gpu_check.py: what a GPU buys, in one command, for a machine that has one.

1. The throughput benchmark on cuda (scripts/benchmark.py's MLP and CNN cases).
2. The CIFAR-10 run of configs/cifar10_cnn.yaml, two epochs per setting, fp32 then bf16-mixed, + channels_last,
   + torch.compile: the second epoch's training images per second (the first pays compilation), and each
   setting's speed-up over fp32.
3. A checkpoint written on the GPU, resumed for one more epoch on the CPU and evaluated there.

`--dry_run` runs all of it on the CPU on a few generated images (compile left out: inductor takes minutes to
compile on a CPU), so the script is tested where no GPU is.
"""

import sys
import tempfile
from pathlib import Path

import torch
from jsonargparse import ArgumentParser

from project.checkpoints.files import find_checkpoint, load_checkpoint
from project.config.shipped import config_path
from project.errors import UserError, exits_on_user_error
from project.evaluation import evaluate
from project.lab.benchmarking import main as benchmark
from project.lab.benchmarking.data_sources import cifar_folder
from project.models import ImageClassifier
from project.training.callbacks.phase_timer import PhaseTimer
from project.training.run import fit_and_test

SETTINGS = {
    "fp32": [],
    "bf16-mixed": ["--trainer.precision=bf16-mixed"],
    "bf16-mixed + channels_last": ["--trainer.precision=bf16-mixed", "--model.channels_last=true"],
    "bf16-mixed + channels_last + compile": [
        "--trainer.precision=bf16-mixed", "--model.channels_last=true", "--model.compile=true",
    ],
}


def main(args: list[str] | None = None) -> None:
    parser = ArgumentParser(exit_on_error=False, description=__doc__)
    parser.add_argument("--cifar_folder", type=str | None, default=None, help="a CIFAR-10 image folder")
    parser.add_argument("--cifar_archive", type=str | None, default=None, help="a .tar.gz of one")
    parser.add_argument("--mnist_root", type=str | None, default=None, help="torchvision's MNIST files are under it")
    parser.add_argument("--batch_size", type=int, default=512, help="the CIFAR runs' batch size (a GPU wants big)")
    parser.add_argument("--dry_run", action="store_true", help="everything on the CPU on generated images")
    with exits_on_user_error():
        config = parser.parse_args(sys.argv[1:] if args is None else args)
        if not config.dry_run and not torch.cuda.is_available():
            raise UserError("no usable CUDA GPU here: run with --dry_run to check the script on the CPU")
        device = "cpu" if config.dry_run else "cuda"
        if device == "cuda":
            print(f"GPU: {torch.cuda.get_device_name()}, bf16 supported: {torch.cuda.is_bf16_supported()}")
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            small = ["--generated_size=600", "--batches=6", "--warmup=2", "--batch_size=32", "--repeats=2",
                     "--max_minutes=0", "--noise_seconds=0.5"]
            small = small if config.dry_run else []
            data_args = [f"--{key}={value}" for key, value in (("mnist_root", config.mnist_root),
                         ("cifar_folder", config.cifar_folder), ("cifar_archive", config.cifar_archive)) if value]
            cases = ["--cases=[mlp_mnist, cnn_cifar]", f"--devices=[{device}]", "--workers=[0]"]
            benchmark.main([*cases, *small, *data_args])
            folder, source = cifar_folder(scratch, config.cifar_folder, config.cifar_archive, 600)
            settings = {name: extra for name, extra in SETTINGS.items() if not (config.dry_run and "compile" in name)}
            rates, runs = {}, {}
            for name, extra in settings.items():
                runs[name], rates[name] = epoch_rate(folder, device, scratch, name, extra, config)
            print(f"\nCIFAR-10 ({source}), the article's CNN, batch {config.batch_size}, on {device}:")
            print("| setting | training images/s (2nd epoch) | speed-up over fp32 |\n|---|---:|---:|")
            for name, rate in rates.items():
                print(f"| {name} | {rate:,.0f} | {rate / rates['fp32']:.2f} |")
            resume_on_cpu(runs["fp32"], folder, scratch, config)


def run_args(folder: str, device: str, scratch: Path, name: str, config) -> list[str]:
    limit = ["--trainer.limit_train_batches=4", "--trainer.limit_val_batches=2"] if config.dry_run else []
    return [
        "--config", str(config_path("cifar10_cnn.yaml")), "--data.dataset=imagefolder", f"--data.root={folder}",
        f"--data.cache_dir={scratch / 'cache'}", f"--data.batch_size={config.batch_size}",
        f"--trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}", "--trainer.devices=1",
        f"--output_dir={scratch / 'runs'}", f"--experiment={name.replace(' + ', '_')}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.logger=false",
        *limit,
    ]


def epoch_rate(folder: str, device: str, scratch: Path, name: str, extra: list[str], config) -> tuple[Path, float]:
    """(run folder, training images per second in the second epoch) of two epochs under `extra`."""
    result = fit_and_test(ImageClassifier, [*run_args(folder, device, scratch, name, config),
                                            "--trainer.max_epochs=2", *extra])
    timer = next(callback for callback in result.trainer.callbacks if isinstance(callback, PhaseTimer))
    batches = result.trainer.num_training_batches
    images = min(len(result.datamodule.train_set), batches * config.batch_size)
    return Path(result.log_dir), images / timer.epochs[-1]


def resume_on_cpu(run: Path, folder: str, scratch: Path, config) -> None:
    """The run's last.ckpt, written on the GPU, trained on for one more epoch on the CPU, then evaluated there."""
    last = run / "checkpoints" / "last.ckpt"
    args = run_args(folder, "cpu", scratch, "fp32", config)
    fit_and_test(ImageClassifier, [*args, "--trainer.max_epochs=3", "--trainer.limit_train_batches=4",
                                   "--trainer.limit_val_batches=2", f"--ckpt_path={last}"])
    if load_checkpoint(last)["epoch"] != 2:
        raise RuntimeError(f"the run resumed from {last} did not train its third epoch")
    evaluate.main([f"--ckpt_path={find_checkpoint(run, 'best')}", "--device=cpu", f"--output_dir={scratch / 'eval'}"])
    print(f"\nresumed on the CPU from {last} (written on {'the CPU: dry run' if config.dry_run else 'the GPU'}) "
          f"and evaluated there: ok")
