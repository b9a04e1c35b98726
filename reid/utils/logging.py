"""Logging set-up shared by the tools: console plus ``OUTPUT_DIR/log.txt``."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

_FORMAT = "[%(asctime)s %(name)s %(levelname)s] %(message)s"
MAX_LINE = 1000  # characters of one written log line (longer lines are cut, saying so)


class LineCappedFormatter(logging.Formatter):
    """A formatter whose every output line has at most ``max_line`` characters.

    Long lines (a huge list, a stray progress bar) are cut and end with
    ``... [N characters cut]``, so a log file stays readable line by line.
    """

    def __init__(self, fmt: str | None = None, datefmt: str | None = None,
                 max_line: int = MAX_LINE) -> None:
        super().__init__(fmt, datefmt)
        self.max_line = max_line

    def format(self, record: logging.LogRecord) -> str:
        lines = super().format(record).replace("\r", "\n").split("\n")
        out = []
        for line in lines:
            if len(line) > self.max_line:
                cut = len(line) - (self.max_line - 30)
                line = f"{line[:self.max_line - 30]} ... [{cut} characters cut]"
            out.append(line)
        return "\n".join(out)


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
    console.setFormatter(LineCappedFormatter(_FORMAT, datefmt="%H:%M:%S"))
    logger.addHandler(console)
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(Path(output_dir) / "log.txt", encoding="utf-8")
        file_handler.setFormatter(LineCappedFormatter(_FORMAT))
        logger.addHandler(file_handler)
    return logger
