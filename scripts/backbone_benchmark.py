"""Seconds per fine-tuning epoch of library backbones (torchvision, timm) at several input sizes, as a table."""

from project.benchmarking.backbone_speed import main

if __name__ == "__main__":
    main()
