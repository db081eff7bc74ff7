"""Export a checkpoint: `export.py --ckpt_path PATH [--output_dir DIR]` writes TorchScript, ONNX and JSON."""

from project.commands import export

if __name__ == "__main__":
    export()
