"""scripts/gpu_check.py passes its CPU dry run: every step a GPU machine would run, on generated images."""

import pytest

from project.lab.benchmarking.gpu_check import main


@pytest.mark.slow
def test_the_gpu_check_runs_end_to_end_on_the_cpu(capsys):
    main(["--dry_run", "--batch_size=64"])
    out = capsys.readouterr().out
    assert "| mlp_mnist" not in out and "mlp_mnist on cpu" in out and "cnn_cifar on cpu" in out  # the benchmark
    rows = [line for line in out.splitlines() if line.startswith("| fp32") or line.startswith("| bf16")]
    assert [row.split(" | ")[0] for row in rows] == ["| fp32", "| bf16-mixed", "| bf16-mixed + channels_last"]
    assert rows[0].endswith("| 1.00 |")
    assert "and evaluated there: ok" in out


def test_without_a_gpu_the_real_check_says_how_to_dry_run(capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    expected = "error: no usable CUDA GPU here: run with --dry_run to check the script on the CPU\n"
    assert capsys.readouterr().err == expected
