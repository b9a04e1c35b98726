"""Pictures of ranked lists and pseudo-label contact sheets, with an index.html:

``python tools/visualize.py --run RUN_DIR --out DIR``.
"""
from reid.apps.cli import visualize_main

if __name__ == "__main__":
    raise SystemExit(visualize_main())
