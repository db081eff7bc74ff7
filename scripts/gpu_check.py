"""What a GPU buys: the benchmark on cuda, a CIFAR-10 epoch in fp32, bf16, channels_last and compile, and a GPU
checkpoint resumed on the CPU. `gpu_check.py [--cifar_archive ../shared/data/cifar10-train-jpg.tar.gz] [--dry_run]`"""

from project.commands import gpu_check

if __name__ == "__main__":
    gpu_check()
