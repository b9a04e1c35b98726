"""Train a re-ID model: ``python tools/train.py --config-file F [--resume] [KEY VALUE ...]``."""
from reid.engine.cli import train_main

if __name__ == "__main__":
    train_main()
