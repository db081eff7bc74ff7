"""Export a checkpoint for deployment: `export.py --ckpt PATH [--output DIR]` writes TorchScript, ONNX and JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing

from project.inference.export import main  # noqa: E402

if __name__ == "__main__":
    main()
