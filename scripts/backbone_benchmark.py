"""Seconds per fine-tuning epoch of library backbones (torchvision, timm) at several input sizes, as a table."""

from project.commands import backbone_benchmark

if __name__ == "__main__":
    backbone_benchmark()
