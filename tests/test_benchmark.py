"""scripts/benchmark.py on tiny generated data: it runs every path and prints its table."""

import subprocess
import sys

import pytest
from tiny_settings import SCRIPTS


@pytest.mark.slow
def test_benchmark_prints_one_table_per_case_with_every_path_and_equal_losses():
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "benchmark.py"), "--generated_size=120", "--batches=3", "--warmup=1",
         "--batch_size=16", "--workers=[0]"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    paths = [row.split(" | ")[0] for row in rows if row[2].isdigit()]
    assert len(paths) == 10 and sum(path.startswith("| 4. same model and data") for path in paths) == 2
    assert sum(path.startswith("| 5. Lightning's floor") for path in paths) == 2
    for row in rows:
        if row.startswith("| 4."):
            assert "losses equal to 5 decimals over 3 steps: yes" in row
    assert "mlp_mnist on cpu: generated MNIST-shaped data" in result.stdout
    assert "cnn_cifar on cpu: generated CIFAR-shaped PNGs" in result.stdout
    phases = [row.split(" | ")[0][2:] for row in rows if not row[2].isdigit() and not row.startswith(("| path", "|-"))]
    assert phases[:7] == ["phase", "data", "training", "validation", "checkpoints", "test", "total"]
    assert phases[-1] == "whole run / compute" and "whole run on cpu: " in result.stdout


@pytest.mark.slow
def test_a_training_set_smaller_than_two_batches_exits_2_with_the_fix():
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "benchmark.py"), "--generated_size=40", "--batch_size=128",
         "--cases=[mlp_mnist]"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "full batches of 128" in result.stderr and "lower --batch_size" in result.stderr


def test_a_batch_size_below_one_exits_2_with_one_line():
    result = subprocess.run([sys.executable, str(SCRIPTS / "benchmark.py"), "--batch_size=0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "--batch_size 0 must be at least 1" in result.stderr


def test_the_backbone_benchmark_prints_a_row_per_case_with_both_phases(capsys):
    from project.benchmarking.backbone_speed import main as backbone_main

    backbone_main(["--cases=[resnet18@32, timm:test_resnet@48]", "--steps=1", "--batch_size=2", "--epoch_images=100"])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [("| resnet18", "32"), ("| timm:test_resnet", "48")]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 and row[4].endswith("× |") for row in rows)


@pytest.mark.parametrize("args", [["--cases=[resnet18]"], ["--cases=[resnet18@x]"], ["--cases=[nope@32]"],
                                  ["--cases=[resnet18@8]"], ["--cases=[]"], ["--batch_size=1"]])
def test_a_bad_backbone_benchmark_setting_exits_2_with_one_line(args, capsys):
    from project.benchmarking.backbone_speed import main as backbone_main

    with pytest.raises(SystemExit) as exit_info:
        backbone_main([*args, "--steps=1"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: ")
