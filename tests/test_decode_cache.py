"""The on-disk cache of decoded image folders: used on a second run, rebuilt when the source changes."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

import project.data.image_folder as image_folder_module
from project.data import ImageDataModule


def setup_data(root, cache_dir) -> ImageDataModule:
    data = ImageDataModule(dataset="imagefolder", root=str(root), cache_dir=cache_dir and str(cache_dir))
    data.setup()
    return data


def all_images(data: ImageDataModule) -> torch.Tensor:
    return torch.cat([data.train_set.images, data.val_set.images, data.test_set.images])


def test_second_run_reads_the_cache_instead_of_decoding(image_folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = setup_data(image_folder, cache)
    uncached = setup_data(image_folder, None)
    assert len(list(cache.glob("*.pt"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(image_folder_module, "decode_files", no_decoding)
    second = setup_data(image_folder, cache)
    assert torch.equal(all_images(first), all_images(second))
    assert torch.equal(all_images(second), all_images(uncached))  # the same images as without a cache


def test_a_changed_file_rebuilds_the_cache(image_folder, tmp_path):
    cache = tmp_path / "cache"
    before = setup_data(image_folder, cache)
    changed = sorted((image_folder / "cat").iterdir())[0]
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(10**18, 10**18))  # a distinct modification time, however fast the test runs
    after = setup_data(image_folder, cache)
    assert not torch.equal(all_images(before), all_images(after))
    assert (all_images(after) == 0).all(dim=(1, 2, 3)).sum() == 1  # the black image is in
    assert len(list(cache.glob("*.pt"))) == 1  # the stale cache file is gone


def test_a_damaged_cache_file_is_rebuilt(image_folder, tmp_path):
    cache = tmp_path / "cache"
    expected = all_images(setup_data(image_folder, cache))
    (cached,) = cache.glob("*.pt")
    cached.write_bytes(b"truncated")
    assert torch.equal(all_images(setup_data(image_folder, cache)), expected)
    assert torch.load(cached, weights_only=True)["images"].shape[0] == len(expected)


@pytest.mark.parametrize("cache_dir", [None, "cache"])
def test_cache_dir_null_writes_nothing(image_folder, tmp_path, cache_dir):
    setup_data(image_folder, cache_dir and tmp_path / cache_dir)  # tests run in tmp_path: data/cache lands there too
    assert bool(list(tmp_path.rglob("*.pt"))) == (cache_dir is not None)
