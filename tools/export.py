"""Export:

``python tools/export.py --config-file F --weights W --output PREFIX`` (TorchScript and ONNX).
"""
from reid.apps.cli import export_main

if __name__ == "__main__":
    raise SystemExit(export_main())
