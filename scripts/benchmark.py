"""Throughput table: compute-only limit vs this project's data path vs torchvision's DataLoader vs a plain loop."""

from project.commands import benchmark

if __name__ == "__main__":
    benchmark()
