"""The commands: pyproject's [project.scripts] (`ltl-pretrain`, ...) and scripts/*.py both call these, with sys.argv.

Above every other package (the commands use all of them), so it lives here rather than in project/cli, which the
study, transferability and inference packages import. Importing all of them takes about as long as importing the
training CLI alone (measured, 4 tries each on a loaded 2-core machine: 3.8-6.4 s against 3.5-6.6 s; torch and
Lightning are most of both), so they are imported here at the top, not inside each command.
"""


from project.evaluation.evaluate import main as evaluate_main
from project.evaluation.export import main as export_main
from project.evaluation.predict import main as predict_main
from project.evaluation.run_report import main as report_main
from project.lab.benchmarking.backbone_speed import main as backbone_benchmark_main
from project.lab.benchmarking.compare import main as compare_benchmarks_main
from project.lab.benchmarking.gpu_check import main as gpu_check_main
from project.lab.benchmarking.main import main as benchmark_main
from project.lab.study.main import main as study_main
from project.lab.transferability.main import main as transferability_main
from project.lab.tune.main import main as tune_main
from project.models import BackboneModule, TransferClassifier
from project.training.run import run_experiment


def pretrain() -> None:
    """Pretrain a backbone on a source task (default config: digits_pretrain.yaml)."""
    # run_experiment's metrics are dropped on purpose: a console script exits with what its function returns.
    run_experiment(BackboneModule, default_config="digits_pretrain.yaml")  # --model picks the class


def finetune() -> None:
    """Fine-tune a pretrained backbone on a target task (default config: digits_finetune.yaml)."""
    run_experiment(TransferClassifier, default_config="digits_finetune.yaml")


def study() -> None:
    """Scratch vs fine-tuning strategies over label budgets and seeds."""
    study_main()


def evaluate() -> None:
    """Evaluate a checkpoint on a test split."""
    evaluate_main()


def predict() -> None:
    """Predict the classes of image files with a checkpoint."""
    predict_main()


def export() -> None:
    """Export a checkpoint as TorchScript, ONNX and its preprocessing JSON."""
    export_main()


def report() -> None:
    """Compare finished runs in a figure and a table."""
    report_main()


def tune() -> None:
    """Choose fine-tuning settings with Optuna on the label-budgeted validation split (the optuna extra)."""
    tune_main()


def transferability() -> None:
    """Score pretrained backbones for a target task before fine-tuning."""
    transferability_main()


def benchmark() -> None:
    """Throughput of this project's data path against the alternatives, as a table."""
    benchmark_main()


def compare_benchmarks() -> None:
    """Two benchmark runs' ratios side by side (their --rounds_file), and how far apart."""
    compare_benchmarks_main()


def backbone_benchmark() -> None:
    """Seconds per fine-tuning epoch of library backbones at several input sizes, as a table."""
    backbone_benchmark_main()


def gpu_check() -> None:
    """What a GPU buys: the benchmark on cuda, a CIFAR-10 epoch in several precisions, a GPU checkpoint on the CPU."""
    gpu_check_main()
