"""The classic path for image folders too large for memory: same images and splits, decoded per batch."""

import re

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_settings import TINY_CNN, TINY_RUN

from project.cli.training import run_experiment
from project.data import ImageDataModule
from project.errors import UserError
from project.lightning_modules import ImageClassifier


def folder_data(root, **options) -> ImageDataModule:
    data = ImageDataModule(dataset="imagefolder", root=str(root), batch_size=8, num_workers=0, **options)
    data.setup()
    return data


def batches(loader) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = list(loader)
    return torch.cat([images for images, _ in pairs]), torch.cat([labels for _, labels in pairs])


@pytest.mark.parametrize("options", [{}, {"classes": ["ship", "cat"], "samples_per_class": 5, "channels": 1}])
def test_from_disk_serves_the_same_splits_and_images_as_in_memory(image_folder, options):
    memory = folder_data(image_folder, in_memory=True, **options)
    disk = folder_data(image_folder, in_memory=False, **options)
    assert not memory.from_disk and disk.from_disk
    for loader in ("val_dataloader", "test_dataloader"):
        memory_images, memory_labels = batches(getattr(memory, loader)())
        disk_images, disk_labels = batches(getattr(disk, loader)())
        assert disk_images.dtype == torch.uint8 and torch.equal(disk_images, memory_images)
        assert torch.equal(disk_labels, memory_labels)
    assert torch.equal(memory.train_set.labels, disk.train_set.labels)
    torch.testing.assert_close(disk.mean, memory.mean)  # fewer than 2,000 images: the sample is all of them
    torch.testing.assert_close(disk.std, memory.std)


def test_from_disk_an_image_of_another_size_is_named_with_the_fix(image_folder):
    odd = image_folder / "ship" / "big.png"
    Image.fromarray(np.zeros((20, 24, 3), dtype=np.uint8)).save(odd)
    with pytest.raises(UserError, match=f"{re.escape(str(odd))}.*24×20.*--data.image_size"):
        folder_data(image_folder, in_memory=False)  # the statistics sample decodes every image of this tiny folder
    assert folder_data(image_folder, in_memory=False, image_size=16).input_shape == (3, 16, 16)


def test_a_folder_larger_than_the_memory_limit_is_read_from_disk(image_folder):
    assert not folder_data(image_folder).from_disk
    assert folder_data(image_folder, memory_limit_gb=1e-6).from_disk  # 36 images of 3×16×16 bytes > 1 kB


def test_a_corrupt_file_is_named_when_it_is_read(image_folder):
    (image_folder / "dog" / "broken.png").write_bytes(b"not an image")
    # Here while sampling the normalization statistics; in a larger folder, when its batch is read.
    with pytest.raises(UserError, match="cannot read image .*broken.png"):
        batches(folder_data(image_folder, in_memory=False).train_dataloader())


def test_pretraining_runs_end_to_end_from_disk(image_folder, tmp_path):
    metrics = run_experiment(ImageClassifier, "digits_pretrain.yaml", [
        *TINY_RUN, TINY_CNN, "--data.dataset=imagefolder", f"--data.root={image_folder}", "--data.classes=null",
        "--data.in_memory=false", "--data.num_workers=0",
    ])
    assert 0 <= metrics["test/acc"] <= 1
    assert list((tmp_path / "lightning_logs" / "digits_pretrain" / "version_0" / "checkpoints").glob("best-*.ckpt"))
