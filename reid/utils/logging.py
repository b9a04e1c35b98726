"""Logging set-up shared by the tools: console plus ``OUTPUT_DIR/log.txt``."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

_FORMAT = "[%(asctime)s %(name)s %(levelname)s] %(message)s"


def setup_logger(output_dir: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Configure the ``reid`` logger once: console handler and, if given, ``output_dir/log.txt``.

    Calling it again replaces the handlers (so a new run in the same process logs to its own file).
    """
    logger = logging.getLogger("reid")
    logger.setLevel(level)
    # Records still propagate to the root logger (which has no handler in the tools), so that
    # pytest's caplog and applications embedding unreid see them.
    logger.propagate = True
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    logger.addHandler(console)
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(Path(output_dir) / "log.txt", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(file_handler)
    return logger
