"""Data: dataset loaders, seeded splits and subsets, batch transforms and the LightningDataModule."""

from project.data.datamodule import DatasetName, ImageDataModule

__all__ = ["DatasetName", "ImageDataModule"]
