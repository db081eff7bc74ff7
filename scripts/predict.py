"""Predict image classes: `predict.py --ckpt_path PATH IMAGE_OR_FOLDER... [--top_k 3] [--output_csv FILE]`."""

from project.commands import predict

if __name__ == "__main__":
    predict()
