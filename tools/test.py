"""Evaluate a re-ID model: ``python tools/test.py --config-file F [KEY VALUE ...]``."""
from reid.engine.cli import test_main

if __name__ == "__main__":
    test_main()
