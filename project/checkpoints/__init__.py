"""Checkpoint files: finding them in run folders, reading them safely, and the pretrained backbone a fine-tuning
run starts from."""
