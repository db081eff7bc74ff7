"""The training scripts' command line: LightningCLI with run folders, resume, pretrained sources, the final test."""
