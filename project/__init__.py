"""Pretrain an image backbone on one task and fine-tune it on another, with PyTorch Lightning."""
