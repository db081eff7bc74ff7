"""Data: loaders against their reference readers, seeded splits and subsets, batch transforms, the DataModule."""

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
import torchvision.transforms.v2.functional as TF
from PIL import Image
from sklearn.datasets import load_digits
from torch import Tensor

from project.data import ImageDataModule
from project.data.batch_transforms import normalize, random_crop, random_horizontal_flip
from project.data.digits import load_digits_images
from project.data.image_files import holds_images, image_files, is_image
from project.data.image_set import ImageSet
from project.data.resumable_shuffle import ResumableShuffle
from project.data.splits import stratified_split
from project.errors import UserError
from project.seeding import Stream, derived_seed

IMAGE_FOLDER_CLASSES = ("cat", "dog", "ship")  # the `image_folder` fixture's classes


def loaded(**settings) -> ImageDataModule:
    """An ImageDataModule with `settings`, set up (no download unless asked)."""
    settings.setdefault("download", False)
    datamodule = ImageDataModule(**settings)
    datamodule.setup()
    return datamodule


def folder_module(root: Path, **settings) -> ImageDataModule:
    return loaded(dataset="imagefolder", root=str(root), **settings)


def image_bytes(images: Tensor) -> list[bytes]:
    """One hashable key per image, to compare sets of images regardless of order."""
    return [image.numpy().tobytes() for image in images]


def png_bytes(folder: Path) -> set[bytes]:
    """The pixels of every PNG in `folder`, as C×H×W keys comparable with `image_bytes`."""
    return {np.array(Image.open(path)).transpose(2, 0, 1).tobytes() for path in folder.glob("*.png")}


def all_splits(datamodule: ImageDataModule) -> ImageSet:
    sets = (datamodule.train_set, datamodule.val_set, datamodule.test_set)
    return ImageSet(torch.cat([s.images for s in sets]), torch.cat([s.labels for s in sets]))


def window_offsets(padded: Tensor, crops: Tensor, allow_flip: bool = False) -> list[tuple[int, int, bool]]:
    """For each crop, the (top, left, flipped) window of `padded` it equals; fails if it equals none."""
    height, width = crops.shape[-2:]
    found: list[tuple[int, int, bool] | None] = [None] * len(crops)
    for top in range(padded.shape[-2] - height + 1):
        for left in range(padded.shape[-1] - width + 1):
            window = TF.crop(padded, top, left, height, width)
            for flipped in (False, True) if allow_flip else (False,):
                candidate = window.flip(-1) if flipped else window
                matches = (crops == candidate).flatten(1).all(1)
                for index in matches.nonzero().flatten().tolist():
                    found[index] = (top, left, flipped)
    missing = [index for index, offset in enumerate(found) if offset is None]
    assert not missing, f"crops {missing} are not windows of the padded image"
    return found


# --- models' inputs: MNIST in its real IDX format, read against torchvision ---


def test_mnist_train_split_with_no_validation_is_the_train_file(mnist_root):
    datamodule = loaded(dataset="mnist", root=str(mnist_root), val_fraction=0)
    reference = torchvision.datasets.MNIST(str(mnist_root), train=True)
    train = datamodule.train_set
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.images.shape == (60, 1, 28, 28)
    for index in range(len(reference)):
        image, label = reference[index]
        assert np.array_equal(train.images[index, 0].numpy(), np.array(image))
        assert int(train.labels[index]) == label
    assert len(datamodule.val_set) == 0


def test_mnist_test_split_is_the_t10k_file(mnist_root):
    datamodule = loaded(dataset="mnist", root=str(mnist_root))
    reference = torchvision.datasets.MNIST(str(mnist_root), train=False)
    test = datamodule.test_set
    assert test.images.shape == (30, 1, 28, 28)
    for index in range(len(reference)):
        image, label = reference[index]
        assert np.array_equal(test.images[index, 0].numpy(), np.array(image))
        assert int(test.labels[index]) == label


def test_mnist_validation_is_held_out_of_the_train_file(mnist_root):
    datamodule = loaded(dataset="mnist", root=str(mnist_root), val_fraction=0.2)
    reference = torchvision.datasets.MNIST(str(mnist_root), train=True)
    expected = sorted((np.array(image).tobytes(), label) for image, label in reference)
    train, val = datamodule.train_set, datamodule.val_set
    got = sorted(
        (key, int(label))
        for split in (train, val)
        for key, label in zip(image_bytes(split.images[:, 0]), split.labels, strict=True)
    )
    assert got == expected
    assert torch.bincount(val.labels, minlength=10).tolist() == [1] * 10  # round(0.2 * 6) of each class
    assert set(image_bytes(train.images)).isdisjoint(image_bytes(val.images))


def test_missing_dataset_offline_raises_user_error_naming_the_root(tmp_path, no_network):
    datamodule = ImageDataModule(dataset="mnist", root=str(tmp_path), download=False)
    datamodule.prepare_data()  # download=False: nothing to fetch, nothing written
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match=re.escape(str(tmp_path))):
        datamodule.setup()


def test_a_download_without_network_raises_user_error_with_the_ways_out(tmp_path, no_network):
    datamodule = ImageDataModule(dataset="mnist", root=str(tmp_path), download=True)
    with pytest.raises(UserError, match=r"could not be downloaded.*--data.root.*--data.dataset=digits") as error:
        datamodule.prepare_data()
    assert "\n" not in str(error.value)


# --- the embedded offline dataset ---


def test_embedded_digits_are_1797_uint8_images_at_mnist_size(no_network):
    digits = load_digits_images()
    reference = load_digits()
    assert digits.images.shape == (1797, 1, 28, 28) and digits.images.dtype == torch.uint8
    assert digits.labels.dtype == torch.int64
    assert digits.labels.tolist() == reference.target.tolist()
    assert sorted(digits.labels.unique().tolist()) == list(range(10))
    assert int(digits.images.min()) == 0 and int(digits.images.max()) == 255
    # Shrunk back to 8×8 on sklearn's 0-16 scale, each image is close to the digit it came from.
    shrunk = torch.nn.functional.interpolate(digits.images.float(), size=(8, 8), mode="area")[:, 0] / 255 * 16
    assert (shrunk - torch.as_tensor(reference.images, dtype=torch.float32)).abs().mean() < 2.0


def test_default_datamodule_is_the_offline_digits(no_network):
    datamodule = ImageDataModule()
    datamodule.prepare_data()
    datamodule.setup()
    assert datamodule.num_classes == 10
    assert datamodule.class_names == [str(digit) for digit in range(10)]
    assert datamodule.input_shape == (1, 28, 28)
    assert datamodule.augment is False  # grayscale: no crop/flip by default
    sizes = [len(s) for s in (datamodule.train_set, datamodule.val_set, datamodule.test_set)]
    assert sum(sizes) == 1797
    assert sizes[2] == pytest.approx(0.2 * 1797, abs=10)
    assert sizes[1] == pytest.approx(0.1 * (sizes[0] + sizes[1]), abs=10)
    assert datamodule.train_set.images.shape[1:] == (1, 28, 28)


@pytest.mark.parametrize(
    "settings",
    [{"val_fraction": 1.0}, {"test_fraction": -0.1}, {"batch_size": 0}, {"samples_per_class": 0}, {"crop_padding": -1}],
    ids=lambda settings: next(iter(settings)),
)
def test_impossible_settings_raise_user_error_naming_them(settings):
    name, value = next(iter(settings.items()))
    with pytest.raises(UserError, match=re.escape(f"{name}={value}")):
        ImageDataModule(**settings)


# --- splits, class subsets and label budgets ---


def test_stratified_split_holds_out_the_fraction_of_every_class():
    shuffle = torch.randperm(100, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0] * 50 + [1] * 10 + [2] * 40)[shuffle]
    kept, held_out = stratified_split(labels, 0.2, seed=3)
    assert torch.bincount(labels[held_out]).tolist() == [10, 2, 8]
    assert sorted(kept.tolist() + held_out.tolist()) == list(range(100))
    assert kept.tolist() == sorted(kept.tolist()) and held_out.tolist() == sorted(held_out.tolist())
    assert torch.equal(stratified_split(labels, 0.2, seed=3)[1], held_out)
    assert not torch.equal(stratified_split(labels, 0.2, seed=4)[1], held_out)


def test_held_out_splits_are_disjoint_cover_every_image_and_hold_every_class(image_folder):
    datamodule = folder_module(image_folder)
    train, val, test = datamodule.train_set, datamodule.val_set, datamodule.test_set
    assert (len(train), len(val), len(test)) == (27, 3, 6)  # per class of 12: test round(2.4)=2, val round(1.0)=1
    keys = [set(image_bytes(s.images)) for s in (train, val, test)]
    assert keys[0].isdisjoint(keys[1]) and keys[0].isdisjoint(keys[2]) and keys[1].isdisjoint(keys[2])
    every_png = set().union(*(png_bytes(image_folder / name) for name in IMAGE_FOLDER_CLASSES))
    assert keys[0] | keys[1] | keys[2] == every_png
    assert torch.bincount(val.labels).tolist() == [1, 1, 1]
    assert torch.bincount(test.labels).tolist() == [2, 2, 2]


def test_split_seed_fixes_the_split_and_another_seed_changes_it(image_folder):
    first, again, other = (folder_module(image_folder, split_seed=seed) for seed in (0, 0, 1))
    for name in ("train_set", "val_set", "test_set"):
        assert torch.equal(getattr(first, name).images, getattr(again, name).images)
        assert torch.equal(getattr(first, name).labels, getattr(again, name).labels)
    assert set(image_bytes(first.test_set.images)) != set(image_bytes(other.test_set.images))
    assert set(image_bytes(first.val_set.images)) != set(image_bytes(other.val_set.images))


@pytest.mark.parametrize("classes", [["ship", "cat"], [2, 0]], ids=["by_name", "by_index"])
def test_class_subset_relabels_in_the_given_order(image_folder, classes):
    full = folder_module(image_folder)
    subset = folder_module(image_folder, classes=classes)
    assert subset.class_names == ["ship", "cat"]
    assert subset.num_classes == 2
    assert subset.input_shape == full.input_shape
    for name in ("train_set", "val_set", "test_set"):
        part, whole = getattr(subset, name), getattr(full, name)
        assert set(part.labels.tolist()) == {0, 1}
        assert torch.equal(part.images[part.labels == 0], whole.images[whole.labels == 2])  # ship
        assert torch.equal(part.images[part.labels == 1], whole.images[whole.labels == 0])  # cat


def test_mnist_class_subset_keeps_digit_names(mnist_root):
    datamodule = loaded(dataset="mnist", root=str(mnist_root), classes=[7, 1])
    reference = torchvision.datasets.MNIST(str(mnist_root), train=False)
    assert datamodule.class_names == ["7", "1"]
    test = datamodule.test_set
    for new_label, digit in enumerate((7, 1)):
        expected = reference.data[reference.targets == digit]
        assert torch.equal(test.images[test.labels == new_label, 0], expected)
    assert len(test) == 6


@pytest.mark.parametrize("classes", [["horse"], [3], ["cat"]], ids=["unknown_name", "index_out_of_range", "only_one"])
def test_bad_class_selection_raises_user_error(image_folder, classes):
    with pytest.raises(UserError, match=re.escape(repr(classes[0]))):
        ImageDataModule(dataset="imagefolder", root=str(image_folder), classes=classes)


def test_label_budget_takes_exactly_n_per_class_seeded(image_folder):
    full = folder_module(image_folder)
    budget = folder_module(image_folder, samples_per_class=3)
    again = folder_module(image_folder, samples_per_class=3)
    assert torch.bincount(budget.train_set.labels).tolist() == [3, 3, 3]
    assert set(image_bytes(budget.train_set.images)) <= set(image_bytes(full.train_set.images))
    assert torch.equal(budget.val_set.images, full.val_set.images)  # 1 val image per class: fewer than the budget
    assert torch.equal(budget.test_set.images, full.test_set.images)
    assert torch.equal(budget.train_set.images, again.train_set.images)
    other_seed = folder_module(image_folder, samples_per_class=3, split_seed=5)
    assert torch.bincount(other_seed.train_set.labels).tolist() == [3, 3, 3]
    assert set(image_bytes(other_seed.train_set.images)) != set(image_bytes(budget.train_set.images))


def test_a_label_budget_budgets_validation_too_from_the_held_out_split(no_network):
    full = loaded(dataset="digits")
    budget = loaded(dataset="digits", samples_per_class=5)
    assert torch.bincount(budget.val_set.labels).tolist() == [5] * 10  # as many as the training budget
    assert set(image_bytes(budget.val_set.images)) <= set(image_bytes(full.val_set.images))
    assert not set(image_bytes(budget.val_set.images)) & set(image_bytes(budget.train_set.images))
    assert torch.equal(budget.test_set.images, full.test_set.images)  # the test split stays whole: it never selects
    more = loaded(dataset="digits", samples_per_class=5, val_samples_per_class=8)
    assert torch.bincount(more.val_set.labels).tolist() == [8] * 10
    assert torch.equal(loaded(dataset="digits", samples_per_class=5, val_samples_per_class="all").val_set.images,
                       full.val_set.images)
    larger = loaded(dataset="digits", samples_per_class=100)  # more than the split holds: all it has
    assert torch.equal(larger.val_set.images, full.val_set.images)
    with pytest.raises(UserError, match="val_samples_per_class=100 but class '0' has only 14 validation samples"):
        loaded(dataset="digits", samples_per_class=5, val_samples_per_class=100)  # asked for: exactly, or an error


def test_label_budget_larger_than_a_class_raises_user_error_naming_it(image_folder):
    with pytest.raises(UserError, match="'cat'.* 9 "):  # 12 - 2 test - 1 val
        folder_module(image_folder, samples_per_class=10)


def test_the_seeded_streams_share_no_draws_across_seeds():
    """seed + offset made seed s in pass p shuffle like seed s+1 in pass p-1: studies' seeds were not independent."""
    orders = {tuple(ResumableShuffle(64, seed, passes)) for seed in range(4) for passes in range(4)}
    assert len(orders) == 16
    seeds = {derived_seed(seed, stream, epoch) for seed in range(4) for stream in Stream for epoch in range(4)}
    assert len(seeds) == 4 * len(Stream) * 4
    # Each is a function of (seed, pass) alone, so a resumed run shuffles as the uninterrupted one did.
    assert list(ResumableShuffle(64, 3, passes=2)) == list(ResumableShuffle(64, 3, passes=2))


def test_zero_val_fraction_gives_an_empty_validation_set(image_folder):
    datamodule = folder_module(image_folder, val_fraction=0)
    assert len(datamodule.val_set) == 0
    assert (len(datamodule.train_set), len(datamodule.test_set)) == (30, 6)


# --- normalization, channels and size ---


@pytest.mark.parametrize(("data", "channels"), [("mnist_root", 1), ("image_folder", 3)])
def test_normalized_training_batches_have_zero_mean_unit_std_per_channel(request, data, channels):
    root = request.getfixturevalue(data)
    dataset = "mnist" if data == "mnist_root" else "imagefolder"
    datamodule = loaded(dataset=dataset, root=str(root), batch_size=7)
    batches = [datamodule.on_after_batch_transfer(batch, 0) for batch in datamodule.train_dataloader()]
    images = torch.cat([images for images, _ in batches])
    assert images.dtype == torch.float32
    assert images.shape == (len(datamodule.train_set), channels, *datamodule.input_shape[1:])
    per_channel = images.transpose(0, 1).flatten(1).double()
    assert per_channel.mean(1).abs().max() < 1e-3
    assert (per_channel.std(1, unbiased=False) - 1).abs().max() < 1e-3
    labels = torch.cat([labels for _, labels in batches])
    assert torch.equal(labels.sort().values, datamodule.train_set.labels.sort().values)
    train_pixels = datamodule.train_set.images.transpose(0, 1).flatten(1).double() / 255
    assert datamodule.mean.tolist() == pytest.approx(train_pixels.mean(1).tolist(), abs=1e-6)
    assert datamodule.std.tolist() == pytest.approx(train_pixels.std(1, unbiased=False).tolist(), abs=1e-6)


def test_grayscale_to_three_channels_replicates_the_channel(mnist_root):
    gray = loaded(dataset="mnist", root=str(mnist_root))
    colour = loaded(dataset="mnist", root=str(mnist_root), channels=3)
    assert colour.input_shape == (3, 28, 28)
    images = colour.train_set.images
    assert images.shape == (len(gray.train_set), 3, 28, 28) and images.dtype == torch.uint8
    for channel in range(3):
        assert torch.equal(images[:, channel], gray.train_set.images[:, 0])
    assert len(colour.mean) == 3 and torch.allclose(colour.mean, gray.mean.expand(3))


def test_image_size_resizes_like_torchvision(mnist_root):
    native = loaded(dataset="mnist", root=str(mnist_root))
    resized = loaded(dataset="mnist", root=str(mnist_root), channels=3, image_size=32)
    assert resized.input_shape == (3, 32, 32)
    for name in ("train_set", "val_set", "test_set"):
        images = getattr(resized, name).images
        assert images.shape[1:] == (3, 32, 32) and images.dtype == torch.uint8
        expected = TF.resize(getattr(native, name).images, [32, 32], antialias=True).expand(-1, 3, -1, -1)
        assert (images.int() - expected.int()).abs().max() <= 1  # rounding


def test_colour_to_one_channel_is_pil_luma(image_folder):
    colour = folder_module(image_folder)
    gray = folder_module(image_folder, channels=1, image_size=8)
    assert gray.input_shape == (1, 8, 8)
    assert gray.train_set.images.shape == (len(colour.train_set), 1, 8, 8)
    luma = [Image.fromarray(image.permute(1, 2, 0).numpy()).convert("L") for image in colour.train_set.images]
    expected = TF.resize(torch.stack([torch.from_numpy(np.array(image)) for image in luma])[:, None], [8, 8])
    assert (gray.train_set.images.int() - expected.int()).abs().max() <= 2  # rounding of luma, then of the resize


# --- augmentation ---


def test_random_crop_is_a_random_window_of_the_zero_padded_image():
    torch.manual_seed(0)
    image = torch.randint(1, 256, (3, 12, 10), dtype=torch.uint8)
    crops = random_crop(image.expand(400, -1, -1, -1), padding=2)
    assert crops.shape == (400, 3, 12, 10) and crops.dtype == torch.uint8
    padded = TF.pad(image, [2])  # zero fill
    offsets = window_offsets(padded, crops)
    assert {(top, left) for top, left, _ in offsets} == {(top, left) for top in range(5) for left in range(5)}


def test_random_crop_with_no_padding_is_the_identity():
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(random_crop(images, padding=0), images)


def test_random_horizontal_flip_mirrors_about_half():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (1000, 3, 4, 5), dtype=torch.uint8)
    out = random_horizontal_flip(images)
    assert out.shape == images.shape and out.dtype == torch.uint8
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert (same ^ mirrored).all()  # each image is either untouched or mirrored
    assert 430 < int(mirrored.sum()) < 570


def test_datamodule_does_not_augment_outside_training(image_folder):
    datamodule = folder_module(image_folder, batch_size=8)
    assert datamodule.augment is True  # colour data: on by default
    batch = next(iter(datamodule.val_dataloader()))
    expected = normalize(batch[0], datamodule.mean, datamodule.std)
    for trainer in (None, SimpleNamespace(training=False)):
        datamodule.trainer = trainer
        first, second = (datamodule.on_after_batch_transfer(batch, 0)[0] for _ in range(2))
        assert torch.equal(first, expected) and torch.equal(second, expected)
    assert torch.allclose(expected[0, 0, 0, 0], (batch[0][0, 0, 0, 0] / 255 - datamodule.mean[0]) / datamodule.std[0])


def test_datamodule_augments_training_batches_with_crop_and_flip(image_folder):
    torch.manual_seed(0)
    datamodule = folder_module(image_folder, batch_size=32, crop_padding=2)
    datamodule.trainer = SimpleNamespace(training=True, current_epoch=0, global_rank=0)
    images, labels = next(iter(datamodule.train_dataloader()))
    first, first_labels = datamodule.on_after_batch_transfer((images, labels), 0)
    second, _ = datamodule.on_after_batch_transfer((images, labels), 0)
    assert first.shape == images.shape and first.dtype == torch.float32
    assert torch.equal(first_labels, labels)
    assert not torch.equal(first, second)
    assert not torch.equal(first, normalize(images, datamodule.mean, datamodule.std))
    # Undo the normalization: each image is a window (maybe mirrored) of its own zero-padded original.
    restored = (first * datamodule.std[None, :, None, None] + datamodule.mean[None, :, None, None]) * 255
    assert (restored - restored.round()).abs().max() < 1e-3
    restored = restored.round().to(torch.uint8)
    offsets = [
        window_offsets(TF.pad(image, [2]), crop[None], allow_flip=True)[0]
        for image, crop in zip(images, restored, strict=True)
    ]
    assert len({(top, left) for top, left, _ in offsets}) > 1 and len({flipped for _, _, flipped in offsets}) == 2


def test_a_second_fit_of_one_datamodule_crops_and_flips_as_the_first(image_folder):
    datamodule = folder_module(image_folder, batch_size=32, crop_padding=2)
    datamodule.trainer = SimpleNamespace(training=True, current_epoch=0, global_rank=0)

    def first_steps_of_a_fit() -> list[Tensor]:
        batch = next(iter(datamodule.train_dataloader()))  # each fit asks for its loader
        return [datamodule.on_after_batch_transfer(batch, 0)[0] for _ in range(2)]

    first_fit, second_fit = first_steps_of_a_fit(), first_steps_of_a_fit()
    assert not torch.equal(first_fit[0], first_fit[1])  # one generator through the epoch
    assert all(torch.equal(a, b) for a, b in zip(first_fit, second_fit, strict=True))  # and epoch 0's again


def test_datamodule_with_augment_off_does_not_augment_training_batches(image_folder):
    datamodule = folder_module(image_folder, augment=False)
    datamodule.trainer = SimpleNamespace(training=True, current_epoch=0, global_rank=0)
    batch = next(iter(datamodule.train_dataloader()))
    expected = normalize(batch[0], datamodule.mean, datamodule.std)
    assert torch.equal(datamodule.on_after_batch_transfer(batch, 0)[0], expected)


# --- the user's image folder ---


def test_image_folder_classes_are_the_sorted_folders(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "animals", per_class=4, classes=("zebra", "ant", "moth"))
    (root / ".thumbnails").mkdir()
    datamodule = folder_module(root, test_fraction=0.25, val_fraction=0.34)
    assert datamodule.class_names == ["ant", "moth", "zebra"]
    everything = all_splits(datamodule)
    for label, name in enumerate(datamodule.class_names):
        assert set(image_bytes(everything.images[everything.labels == label])) == png_bytes(root / name)


def test_image_folder_images_are_the_png_pixels(image_folder):
    datamodule = folder_module(image_folder)
    assert datamodule.class_names == list(IMAGE_FOLDER_CLASSES)
    assert datamodule.input_shape == (3, 16, 16)
    assert datamodule.train_set.images.shape[1:] == (3, 16, 16)
    everything = all_splits(datamodule)
    assert len(everything) == 36 and everything.images.dtype == torch.uint8
    for label, name in enumerate(IMAGE_FOLDER_CLASSES):
        assert set(image_bytes(everything.images[everything.labels == label])) == png_bytes(image_folder / name)


def test_image_folder_uses_its_val_and_test_folders(split_image_folder):
    datamodule = folder_module(split_image_folder)
    assert datamodule.class_names == list(IMAGE_FOLDER_CLASSES)
    assert (len(datamodule.train_set), len(datamodule.val_set), len(datamodule.test_set)) == (24, 6, 9)
    for split in ("train", "val", "test"):
        image_set = getattr(datamodule, f"{split}_set")
        for label, name in enumerate(IMAGE_FOLDER_CLASSES):
            got = set(image_bytes(image_set.images[image_set.labels == label]))
            assert got == png_bytes(split_image_folder / split / name)


def test_image_folder_val_folder_may_lack_a_class(tmp_path, make_image_folder):
    root = tmp_path / "data"
    make_image_folder(root / "train", per_class=6)
    make_image_folder(root / "val", per_class=2, classes=("cat", "dog"), seed=1)
    datamodule = folder_module(root)
    assert datamodule.num_classes == 3
    assert torch.bincount(datamodule.val_set.labels, minlength=3).tolist() == [2, 2, 0]


def test_image_folder_mixes_grayscale_into_colour(image_folder):
    gray_pixels = np.random.default_rng(3).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(gray_pixels, mode="L").save(image_folder / "dog" / "gray.png")
    datamodule = folder_module(image_folder)
    everything = all_splits(datamodule)
    assert len(everything) == 37 and everything.images.shape[1:] == (3, 16, 16)
    expected = torch.from_numpy(gray_pixels).expand(3, -1, -1)
    assert sum(torch.equal(image, expected) for image in everything.images) == 1


def test_missing_image_folder_raises_user_error_naming_it(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(UserError, match=re.escape(str(missing))):
        ImageDataModule(dataset="imagefolder", root=str(missing))


def test_image_folder_without_class_folders_raises_user_error_naming_it(tmp_path):
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(UserError, match=re.escape(str(tmp_path))):
        ImageDataModule(dataset="imagefolder", root=str(tmp_path))


def test_class_folders_without_images_raise_user_error_naming_the_folder(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text("not an image")
    with pytest.raises(UserError, match=re.escape(str(tmp_path))):
        folder_module(tmp_path)


def test_one_empty_class_folder_is_refused_by_name_not_taken_as_a_class(image_folder):
    (image_folder / "bird").mkdir()  # sorted between cat and dog: as a class, it would shift the dog's label
    with pytest.raises(UserError, match=r"class folders \['bird'\].*hold no images"):
        folder_module(image_folder)


def test_the_decode_cache_inside_the_image_folder_is_not_a_class(image_folder):
    first = folder_module(image_folder, cache_dir=str(image_folder / "cache"))
    assert list((image_folder / "cache").iterdir())  # the cache was written inside the image folder
    second = folder_module(image_folder, cache_dir=str(image_folder / "cache"))
    assert first.class_names == second.class_names == ["cat", "dog", "ship"]


def test_a_class_left_without_training_images_is_refused_by_name(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "images", per_class=2, classes=("cat", "dog"))
    with pytest.raises(UserError, match=r"classes \['cat', 'dog'\] have no training images.*val_fraction"):
        folder_module(root, test_fraction=0.5, val_fraction=0.9)  # 1 test, round(0.9 × 1) = 1 val, 0 train


def test_corrupt_image_raises_user_error_naming_the_file(image_folder):
    broken = image_folder / "dog" / "broken.png"
    broken.write_bytes(b"these bytes are not a PNG")
    with pytest.raises(UserError, match=re.escape(str(broken))):
        folder_module(image_folder)


def test_images_of_different_sizes_need_image_size(image_folder):
    odd = image_folder / "ship" / "big.png"
    Image.fromarray(np.zeros((20, 24, 3), dtype=np.uint8)).save(odd)
    with pytest.raises(UserError, match=re.escape(str(odd))) as error:
        folder_module(image_folder)
    assert "image_size" in str(error.value)
    datamodule = folder_module(image_folder, image_size=16)
    everything = all_splits(datamodule)
    assert len(everything) == 37 and everything.images.shape[1:] == (3, 16, 16)
    assert datamodule.input_shape == (3, 16, 16)
    assert sum(bool((image == 0).all()) for image in everything.images) == 1  # the black 24×20 image, resized


def test_non_square_images_keep_their_shape_and_a_split_of_another_size_is_named(tmp_path, make_image_folder):
    root = tmp_path / "wide"
    make_image_folder(root / "train", per_class=6, classes=("cat", "dog"))
    for name in ("cat", "dog"):  # make every training image 16 high, 24 wide
        for path in (root / "train" / name).glob("*.png"):
            Image.fromarray(np.full((16, 24, 3), 7, dtype=np.uint8)).save(path)
    datamodule = folder_module(root, cache_dir=None)
    assert datamodule.input_shape == (3, 16, 24) and datamodule.train_set.images.shape[1:] == (3, 16, 24)
    make_image_folder(root / "val", per_class=2, classes=("cat", "dog"))  # 16×16: another size
    with pytest.raises(UserError, match=r"the val images are 16×16 but the training images 24×16.*--data.image_size"):
        folder_module(root, cache_dir=None)


# --- batches ---


def test_train_loader_yields_uint8_batches_covering_the_train_set(image_folder):
    datamodule = folder_module(image_folder, batch_size=8)
    batches = list(datamodule.train_dataloader())
    assert [len(labels) for _, labels in batches] == [8, 8, 8, 3]
    for images, labels in batches:
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert images.shape[1:] == (3, 16, 16)
    images = torch.cat([images for images, _ in batches])
    assert sorted(image_bytes(images)) == sorted(image_bytes(datamodule.train_set.images))


def test_eval_loaders_keep_the_order(image_folder):
    datamodule = folder_module(image_folder, batch_size=4)
    for loader, image_set in (
        (datamodule.val_dataloader(), datamodule.val_set),
        (datamodule.test_dataloader(), datamodule.test_set),
    ):
        images, labels = (torch.cat(parts) for parts in zip(*loader, strict=True))
        assert torch.equal(images, image_set.images) and torch.equal(labels, image_set.labels)


def test_dataset_getitems_equals_indexing(image_folder):
    datamodule = folder_module(image_folder)
    dataset = datamodule.train_dataloader().dataset
    indices = [5, 0, 3, 3, len(dataset) - 1]
    images, labels = dataset.__getitems__(indices)
    assert torch.equal(images, torch.stack([dataset[index][0] for index in indices]))
    assert torch.equal(labels, torch.stack([dataset[index][1] for index in indices]))
    assert torch.equal(images, datamodule.train_set.images[indices])


def test_dataloader_before_setup_raises(image_folder):
    datamodule = ImageDataModule(dataset="imagefolder", root=str(image_folder))
    with pytest.raises(RuntimeError, match="setup"):
        datamodule.train_dataloader()


def test_a_class_folder_linking_to_another_class_is_refused_not_labelled_twice(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "images", per_class=6, classes=("a", "b"))
    (root / "loop").symlink_to(root.resolve(), target_is_directory=True)  # a class folder that is the whole folder
    with pytest.raises(UserError, match=r"the image '.*/a/000.png' \(class 'a'\) is also '.*/loop/a/000.png' "
                                        r"\(class 'loop'\): one file under two classes"):
        ImageDataModule("imagefolder", root=str(root), cache_dir=None).setup("fit")


def test_macos_zip_debris_is_neither_a_class_nor_an_image(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "images", per_class=6, classes=("a", "b"))
    (root / "__MACOSX" / "a").mkdir(parents=True)
    (root / "__MACOSX" / "a" / "._000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble, not an image")
    (root / "a" / "._001.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble, not an image")
    data = ImageDataModule("imagefolder", root=str(root), cache_dir=None, classes=None)
    data.setup("fit")
    assert data.class_names == ["a", "b"]
    assert len(data.train_set) + len(data.val_set) + len(data.test_set) == 12


def test_the_folder_walk_lists_what_a_sorted_rglob_would(tmp_path):
    """The one-pass walk (os.scandir) gives the files, in the order, that `sorted(rglob("*"))` filtered gave: the
    order fixes the seeded splits, so a faster walk must not reshuffle anyone's data or skip a file it took."""
    root = tmp_path / "images"
    for name in ("a/x.png", "a.png", "a/b/c.jpg", "a-b/d.PNG", "A/e.png", "z/notes.txt", "__MACOSX/a/f.png",
                 "a/._g.png", "deep/1/2/3/h.webp", "b.png/i.png"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded here")
    (root / "linked.png").symlink_to(root / "a.png")
    (root / "linked_folder").symlink_to(root / "a", target_is_directory=True)  # listed but not walked, as rglob
    expected = [path for path in sorted(root.rglob("*")) if is_image(path) and path.is_file()
                and "__MACOSX" not in path.parts and not path.name.startswith("._")]
    assert image_files(root) == expected and len(expected) == 8
    assert not holds_images(root / "z") and holds_images(root / "deep")


def test_a_link_that_loops_is_named_on_one_line_not_a_traceback(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "images", per_class=6, classes=("a", "b"))
    (root / "a" / "self.png").symlink_to("self.png")  # a link to itself: stat fails with ELOOP
    with pytest.raises(UserError, match=r"image '.*/a/self.png' is a link to a file that does not exist"):
        image_files(root / "a")
