"""Evaluate a re-ID model: ``python tools/test.py --config-file F [KEY VALUE ...]``.

Exit status: 0 success, 2 user error (config, dataset, checkpoint, device), 130 interrupted.
"""
from reid.engine.cli import main_test

if __name__ == "__main__":
    raise SystemExit(main_test())
