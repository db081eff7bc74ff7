"""Throughput table: compute-only limit vs this project's data path vs torchvision's DataLoader vs a plain loop."""

from project.benchmarking.main import main

if __name__ == "__main__":
    main()
