"""Train a re-ID model: ``python tools/train.py --config-file F [--resume] [KEY VALUE ...]``.

Exit status: 0 success, 2 user error (config, dataset, checkpoint, device), 130 interrupted.
"""
from reid.engine.cli import main_train

if __name__ == "__main__":
    raise SystemExit(main_train())
