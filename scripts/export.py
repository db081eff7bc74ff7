"""Export a checkpoint: `export.py --ckpt_path PATH [--output_dir DIR]` writes TorchScript, ONNX and JSON."""

from project.inference.export import main

if __name__ == "__main__":
    main()
