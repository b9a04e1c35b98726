"""Extract features:

``python tools/extract.py --config-file F --weights W --input DIR --output feats.npz``.
"""
from reid.apps.cli import extract_main

if __name__ == "__main__":
    raise SystemExit(extract_main())
