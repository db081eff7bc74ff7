"""The classic path for image folders too large for memory: same images and splits, decoded per batch."""

import re

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_settings import TINY_CNN, TINY_RUN

from project.data import ImageDataModule
from project.data.image_files import decode_image
from project.errors import UserError, one_line
from project.models import ImageClassifier
from project.training.run import run_experiment


def folder_data(root, **options) -> ImageDataModule:
    data = ImageDataModule(dataset="imagefolder", root=str(root), **{"batch_size": 8, "num_workers": 0, **options})
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


def test_from_disk_a_corrupt_file_is_named_before_anything_trains(image_folder):
    (image_folder / "dog" / "broken.png").write_bytes(b"not an image")
    data = ImageDataModule(dataset="imagefolder", root=str(image_folder), in_memory=False)
    with pytest.raises(UserError, match="cannot read image .*broken.png"):  # every header is read when it opens
        assert data.input_shape


def test_a_file_damaged_past_its_header_is_named_on_one_line_from_a_worker(image_folder):
    """A JPEG cut short passes the header check (JPEG has no checksum to verify): its worker reports it."""
    photo = image_folder / "dog" / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(photo, quality=95)
    photo.write_bytes(photo.read_bytes()[:-200])
    data = ImageDataModule(dataset="imagefolder", root=str(image_folder), in_memory=False, num_workers=1)
    data.normalize_like({"mean": [0.5] * 3, "std": [0.25] * 3})  # no statistics sample: nothing decoded here
    data.setup()
    data.train_set = data.train_set.joined(data.test_set).joined(data.val_set)  # wherever the split put it
    with pytest.raises(UserError) as raised:
        batches(data.train_dataloader())
    assert str(raised.value).startswith("Caught UserError in DataLoader worker process 0")  # how torch re-raises it
    assert one_line(str(raised.value)).startswith(f"cannot read image '{photo}' (image file is truncated")


def test_pretraining_from_disk_trains_as_from_memory(image_folder, tmp_path):
    """The same images in the same order, augmented alike: the same run, to float precision."""
    args = [*TINY_RUN, TINY_CNN, "--data.dataset=imagefolder", f"--data.root={image_folder}", "--data.classes=null"]
    from_memory = run_experiment(ImageClassifier, "digits_pretrain.yaml", [*args, "--data.in_memory=true"])
    from_disk = run_experiment(ImageClassifier, "digits_pretrain.yaml", [
        *args, "--data.in_memory=false", "--data.num_workers=0",
    ])
    assert from_disk == pytest.approx(from_memory, abs=1e-4)


def test_a_16_bit_image_is_scaled_to_8_bits_not_clamped(tmp_path):
    pixels = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 0, 1, 128 and 255 in 8 bits
    Image.fromarray(pixels).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode.startswith("I")  # PIL reads it as 16-bit: the case that used to be clamped at 255
    assert decode_image(tmp_path / "deep.png").tolist() == [[[0, 1, 128, 255]]]


def test_a_folder_whose_first_image_is_gray_is_colour_if_any_image_is(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "mixed", per_class=4, classes=("a", "b"), size=8)
    for path in sorted((root / "a").glob("*.png"))[:1]:  # the very first file: gray
        Image.fromarray(np.full((8, 8), 9, dtype=np.uint8), mode="L").save(path)
    for in_memory in (True, False):
        data = folder_data(root, in_memory=in_memory)
        assert data.input_shape == (3, 8, 8)
        assert next(iter(data.train_dataloader()))[0].shape[1] == 3


def test_an_error_in_a_dataloader_worker_is_reported_on_its_own_line():
    wrapped = (
        "Caught UserError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nproject.errors.UserError: cannot read image \'a.jpg\' (broken): remove it\n'
    )
    assert one_line(wrapped) == "cannot read image 'a.jpg' (broken): remove it"
