"""Data: dataset loaders, seeded splits and subsets, batch transforms and the LightningDataModule."""

from project.data.datamodule import ImageDataModule
from project.data.sources import DatasetName

__all__ = ["DatasetName", "ImageDataModule"]
