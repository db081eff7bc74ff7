"""Score pretrained backbones for a target task in seconds, each next to random weights, before fine-tuning.

`transferability.py --finetune_config configs/cifar10_related_finetune.yaml --sources '[run_a, run_b]'`
"""

from project.commands import transferability

if __name__ == "__main__":
    transferability()
