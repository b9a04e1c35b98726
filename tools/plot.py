"""Training curves: ``python tools/plot.py RUN_DIR`` (writes RUN_DIR/curves.png)."""
from reid.apps.cli import plot_main

if __name__ == "__main__":
    raise SystemExit(plot_main())
