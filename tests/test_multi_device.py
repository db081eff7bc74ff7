"""Pretraining under 2-process DDP on CPU (gloo), supervised and SimCLR (its negatives gathered from both
processes): it finishes, writes its checkpoints once, syncs its metrics."""

import subprocess
import sys

import pytest
import torch
from tiny_settings import SCRIPTS, TINY_CNN, TINY_RUN


@pytest.mark.slow
@pytest.mark.parametrize(
    "objective", [[], ["--model=SimCLRPretraining", "--data.augment=false", "--model.projection_dims=[16, 8]"]],
    ids=["supervised", "simclr"],
)
def test_pretraining_under_two_process_ddp_on_cpu(tmp_path, objective):
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "pretrain.py"), *TINY_RUN, TINY_CNN, "--trainer.max_epochs=2",
         "--trainer.devices=2", "--trainer.strategy=ddp", *objective],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "lightning_logs" / "digits_pretrain"
    assert [p.name for p in run.iterdir()] == ["version_0"]  # one run folder, not one per rank
    checkpoints = sorted(p.name for p in (run / "version_0" / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and checkpoints[1] == "last.ckpt"
    last = torch.load(run / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2 * 3  # 3 batches a rank per epoch: ranks step together
    assert result.stdout.count("test metrics:") == 1  # the summary comes from rank 0 only
