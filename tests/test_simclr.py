"""Self-supervised pretraining: the views, the NT-Xent loss (alone and across 2 processes), the k-NN monitor, exact
resume, unlabelled images, the handoff to fine-tuning, and the logistic probe strategy."""

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from PIL import Image
from tiny_settings import TINY_CNN, TINY_RUN

from project.checkpoints.files import find_checkpoint, load_checkpoint
from project.config.shipped import config_path
from project.data.views import colour_jitter, random_grayscale, random_resized_crop, shift_hue, simclr_view
from project.feature_probes.logistic import fit_logistic_probe
from project.models import BackboneModule, ImageClassifier, SimCLRPretraining, TransferClassifier
from project.models.contrastive import nt_xent
from project.seeding import Stream, derived_seed
from project.training.run import fit_and_test, run_experiment

SIMCLR = ["--data.augment=false", TINY_CNN, "--model.projection_dims=[16, 8]"]


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- views ---


def test_a_crop_of_the_whole_image_unmirrored_is_the_image():
    images = torch.rand(4, 3, 8, 8, generator=generator())
    same = random_resized_crop(images, generator(), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    torch.testing.assert_close(same, images, atol=1e-5, rtol=0)


def test_crops_are_drawn_per_image_and_repeat_with_the_generator():
    images = torch.rand(1, 3, 16, 16, generator=generator()).expand(6, -1, -1, -1)
    views = simclr_view(images, generator(1))
    assert views.shape == images.shape and 0 <= views.min() and views.max() <= 1
    assert len({view.numpy().tobytes() for view in views}) == 6  # one draw each, though the images are equal
    torch.testing.assert_close(simclr_view(images, generator(1)), views)


def test_hue_turns_by_nothing_or_a_full_circle_change_nothing():
    images = torch.rand(3, 3, 4, 4, generator=generator())
    for turns in (0.0, 1.0):
        torch.testing.assert_close(shift_hue(images, torch.full((3,), turns)), images, atol=1e-5, rtol=0)


def test_jitter_and_grayscale_apply_with_their_probability():
    images = torch.rand(64, 3, 4, 4, generator=generator())
    assert torch.equal(colour_jitter(images, generator(), probability=0.0), images)
    gray = random_grayscale(images, generator(), probability=1.0)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    jittered = colour_jitter(images, generator(), probability=0.5)
    changed = (jittered != images).flatten(1).any(1).float().mean()
    assert 0.3 < changed < 0.7


# --- the loss ---


def naive_nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent as the SimCLR paper writes it, one anchor at a time."""
    views = F.normalize(torch.cat([first, second]), dim=1)
    n = len(first)
    losses = []
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        similarities = torch.stack([views[i] @ views[k] / temperature for k in range(2 * n) if k != i])
        target = views[i] @ views[positive] / temperature
        losses.append(torch.logsumexp(similarities, dim=0) - target)
    return torch.stack(losses).mean()


def test_nt_xent_is_the_papers_loss_and_perfect_pairs_are_found():
    first, second = torch.randn(6, 5, generator=generator()), torch.randn(6, 5, generator=generator(1))
    loss, _ = nt_xent(first, second, 0.2)
    torch.testing.assert_close(loss, naive_nt_xent(first, second, 0.2))
    assert nt_xent(first, first.clone(), 0.2)[1] == 1.0  # each view's nearest other view is its pair


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_process_loss(rank: int, port: int, first: torch.Tensor, second: torch.Tensor, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    half = len(first) // 2
    mine = [view[rank * half : (rank + 1) * half].clone().requires_grad_(True) for view in (first, second)]

    def gather(rows: torch.Tensor) -> torch.Tensor:  # what Lightning's all_gather(sync_grads=True) does
        return torch.cat(torch.distributed.nn.functional.all_gather(rows))

    loss, accuracy = nt_xent(*mine, 0.2, gather, rank)
    loss.backward()
    results[rank] = (loss.detach(), accuracy, [view.grad for view in mine])
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_of_batch_b_compute_the_loss_and_gradients_of_one_of_batch_2b():
    first, second = torch.randn(8, 5, generator=generator()), torch.randn(8, 5, generator=generator(1))
    whole = [view.clone().requires_grad_(True) for view in (first, second)]
    loss, accuracy = nt_xent(*whole, 0.2)
    loss.backward()
    results = mp.Manager().dict()
    mp.spawn(two_process_loss, args=(free_port(), first, second, results), nprocs=2, join=True)
    ranks = [results[0], results[1]]
    torch.testing.assert_close(sum(r[0] for r in ranks) / 2, loss.detach())  # DDP averages the ranks' losses
    torch.testing.assert_close(sum(r[1] for r in ranks) / 2, accuracy)
    for rank, (_, _, gradients) in enumerate(ranks):  # ... and the gradients: each rank's share of the whole one
        for view, gradient in zip(whole, gradients, strict=True):
            torch.testing.assert_close(gradient / 2, view.grad[rank * 4 : (rank + 1) * 4])


# --- the module ---


def test_pretraining_without_labels_monitors_knn_accuracy_and_hands_its_backbone_on(tmp_path, capsys):
    result = fit_and_test(BackboneModule, ["--config", str(config_path("digits_pretrain.yaml")), *TINY_RUN,
                                           "--model=SimCLRPretraining", *SIMCLR, "--trainer.max_epochs=2"])
    assert isinstance(result.model, SimCLRPretraining)  # chosen by --model, as scripts/pretrain.py does
    assert set(result.metrics) == {"test/knn_acc"} and 0 < result.metrics["test/knn_acc"] <= 1
    selected = load_checkpoint(result.selected_checkpoint)
    assert selected["model_class"] == "SimCLRPretraining"
    assert result.trainer.checkpoint_callback.monitor == "val/knn_acc"  # the best epoch is the monitor's
    assert 0 < result.selected_val_acc <= 1
    metrics = run_experiment(TransferClassifier, "digits_finetune.yaml", [
        *TINY_RUN, f"--model.pretrained={tmp_path / 'lightning_logs' / 'digits_pretrain'}",
        "--model.reinit_blocks=0",
    ])
    assert set(metrics) == {"test/acc", "test/loss"}
    finetuned = load_checkpoint(find_checkpoint(tmp_path / "lightning_logs" / "digits_finetune", "best"))
    assert finetuned["provenance"]["pretraining_hparams"]["temperature"] == 0.2
    assert finetuned["provenance"]["sha256"]


def final_weights(folder, *args: str) -> dict[str, torch.Tensor]:
    run_experiment(SimCLRPretraining, "digits_pretrain.yaml", [*TINY_RUN, *SIMCLR, f"--output_dir={folder}", *args])
    return load_checkpoint(folder / "digits_pretrain" / "version_0" / "checkpoints" / "last.ckpt")["state_dict"]


def test_a_knn_monitor_with_more_neighbours_than_a_class_has_images_says_the_k_it_uses(tmp_path):
    with pytest.warns(UserWarning, match="too few images for the k-NN monitor's knn_k=5000: it uses k="):
        run_experiment(SimCLRPretraining, "digits_pretrain.yaml", [*TINY_RUN, *SIMCLR, "--model.knn_k=5000"])


def test_a_run_resumed_at_an_epoch_boundary_ends_with_the_same_weights(tmp_path):
    constant = "--model.scheduler=none"  # a schedule's length is the run's: a shorter first run would change it
    straight = final_weights(tmp_path / "straight", "--trainer.max_epochs=2", constant)
    final_weights(tmp_path / "cut", "--trainer.max_epochs=1", constant)
    resumed = final_weights(tmp_path / "cut", "--trainer.max_epochs=2", "--ckpt_path=last", constant)
    assert straight.keys() == resumed.keys()
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key


def test_unlabelled_images_join_the_training_split_for_simclr_only(tmp_path, make_image_folder, capsys):
    labelled = make_image_folder(tmp_path / "labelled", per_class=10, classes=("a", "b"), size=16)
    loose = make_image_folder(tmp_path / "loose", per_class=15, classes=("x",), size=16)
    data = ["--data.dataset=imagefolder", f"--data.root={labelled}", f"--data.unlabelled_root={loose}",
            "--data.classes=null"]
    result = fit_and_test(SimCLRPretraining, ["--config", str(config_path("digits_pretrain.yaml")), *TINY_RUN,
                                              *SIMCLR, *data])
    labels = result.datamodule.train_set.labels
    assert int((labels == -1).sum()) == 15 and int((labels >= 0).sum()) == 14  # 20 - 2 test - 4 val
    with pytest.raises(SystemExit) as exit_info:
        run_experiment(ImageClassifier, "digits_pretrain.yaml", [*TINY_RUN, TINY_CNN, *data])
    assert exit_info.value.code == 2
    assert "unlabelled_root's images have no labels: only SimCLR pretraining (--model=SimCLRPretraining)" in (
        capsys.readouterr().err)


def test_unlabelled_images_of_another_size_are_a_clear_error_before_training(tmp_path, make_image_folder, capsys):
    labelled = make_image_folder(tmp_path / "labelled", per_class=10, classes=("a", "b"), size=16)
    loose = make_image_folder(tmp_path / "loose", per_class=5, classes=("x",), size=20)
    data = ["--data.dataset=imagefolder", f"--data.root={labelled}", f"--data.unlabelled_root={loose}",
            "--data.classes=null"]
    with pytest.raises(SystemExit) as exit_info:
        run_experiment(SimCLRPretraining, "digits_pretrain.yaml", [*TINY_RUN, *SIMCLR, *data])
    assert exit_info.value.code == 2
    assert "--data.unlabelled_root are (3, 20, 20) (C, H, W) but the labelled ones are (3, 16, 16)" in (
        capsys.readouterr().err)
    assert not (tmp_path / "lightning_logs").exists()
    result = fit_and_test(SimCLRPretraining, ["--config", str(config_path("digits_pretrain.yaml")), *TINY_RUN,
                                              *SIMCLR, *data, "--data.image_size=16"])  # the fix it names
    assert tuple(result.datamodule.train_set.images.shape[1:]) == (3, 16, 16)


def test_the_model_class_is_chosen_the_lightningcli_way_and_only_pretraining_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:  # the shipped SimCLR config names its class
        run_experiment(BackboneModule, "digits_pretrain.yaml",
                       ["--config", str(config_path("cifar10_simclr.yaml")), "--print_config"])
    assert exit_info.value.code == 0
    assert "class_path: project.models.SimCLRPretraining" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        run_experiment(BackboneModule, "digits_pretrain.yaml", [*TINY_RUN, "--model=TransferClassifier"])
    assert exit_info.value.code == 2
    assert "--model=TransferClassifier: pretraining trains ImageClassifier or SimCLRPretraining" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as exit_info:  # an argument of SimCLR's, before the class was chosen
        run_experiment(BackboneModule, "digits_pretrain.yaml", [*TINY_RUN, "--model.temperature=0.3"])
    assert exit_info.value.code == 2
    assert "takes no temperature (--model.help <class> lists a class's options; another class's option needs" in (
        capsys.readouterr().err
    )


# --- the logistic probe strategy ---


def test_the_logistic_probe_head_is_the_probe_of_the_frozen_training_features(tmp_path, pretrained_run):
    overlay = config_path("strategy/logistic_probe.yaml")
    result = fit_and_test(TransferClassifier, [
        "--config", str(config_path("digits_finetune.yaml")), "--config", str(overlay), *TINY_RUN,
        f"--model.pretrained={pretrained_run}", "--data.samples_per_class=6",
    ])
    model, data = result.model, result.datamodule
    with torch.no_grad():
        features = torch.cat([model.backbone(images) for images, _ in data.ordered_batches("train", "cpu")])
    probe = fit_logistic_probe(features, data.train_set.labels, seed=42)
    torch.testing.assert_close(model.head.weight, probe.weight)
    pretrained = load_checkpoint(find_checkpoint(pretrained_run, "best"))["state_dict"]
    assert all(torch.equal(value, pretrained[f"backbone.{key}"]) for key, value in model.backbone.state_dict().items())
    assert math.isfinite(result.metrics["test/acc"])


def test_the_probe_with_views_is_fit_on_each_image_and_its_crops_and_flips(tmp_path, pretrained_run):
    overlay = config_path("strategy/logistic_probe.yaml")
    result = fit_and_test(TransferClassifier, [
        "--config", str(config_path("digits_finetune.yaml")), "--config", str(overlay), *TINY_RUN,
        f"--model.pretrained={pretrained_run}", "--data.samples_per_class=6", "--data.augment=true",
        "--model.probe_views=2",
    ])
    model, data = result.model, result.datamodule
    views = torch.Generator().manual_seed(derived_seed(42, Stream.PROBE_VIEWS))
    with torch.no_grad():
        features = [model.backbone(images) for images, _ in data.ordered_batches("train", "cpu")]
        for _ in range(2):
            features += [model.backbone(images) for images, _ in data.ordered_batches("train", "cpu", views)]
    rows = len(data.train_set)
    probe = fit_logistic_probe(torch.cat(features), data.train_set.labels.repeat(3), seed=42,
                               images=torch.arange(rows).repeat(3))
    torch.testing.assert_close(model.head.weight, probe.weight)
    plain = fit_logistic_probe(torch.cat(features[: len(features) // 3]), data.train_set.labels, seed=42)
    assert not torch.allclose(model.head.weight, plain.weight)  # the views changed the probe


@pytest.mark.parametrize("script", ["evaluate", "predict", "export"])
def test_the_classification_tools_refuse_a_simclr_checkpoint_in_one_line(tmp_path, script, capsys):
    from project.evaluation.evaluate import main as evaluate_main
    from project.evaluation.export import main as export_main
    from project.evaluation.predict import main as predict_main

    fit_and_test(SimCLRPretraining, ["--config", str(config_path("digits_pretrain.yaml")), *TINY_RUN, *SIMCLR])
    run = tmp_path / "lightning_logs" / "digits_pretrain" / "version_0"
    before = sorted(path.name for path in run.rglob("*"))
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28)).save(image)
    main, extra = {"evaluate": (evaluate_main, []), "predict": (predict_main, [str(image)]),
                   "export": (export_main, [])}[script]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--ckpt_path", str(run), *extra])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "is a SimCLRPretraining checkpoint: a backbone without a classifier" in err and "fine-tune it first" in err
    assert sorted(path.name for path in run.rglob("*")) == before  # nothing written into the run
