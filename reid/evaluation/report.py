"""Text tables of evaluation results (mAP, mINP, CMC rank-1/5/10 in %)."""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["format_results", "print_results"]

_COLUMNS = (("mAP", "mAP"), ("mINP", "mINP"), ("rank1", "rank-1"), ("rank5", "rank-5"),
            ("rank10", "rank-10"))


def _is_result(obj: Any) -> bool:
    return isinstance(obj, Mapping) and "mAP" in obj


def format_results(results: Mapping[str, Any]) -> str:
    """Table of one result dict (as returned by ``evaluate_features``) or ``{name: result}``.

    Values are fractions in [0, 1] printed as percentages with one decimal; a missing metric
    is printed as ``-``. Example::

        dataset      mAP    mINP  rank-1  rank-5 rank-10
        market    71.2%   30.1%   88.0%   95.1%   96.9%
    """
    if _is_result(results):
        rows = [("", results)]
    else:
        rows = list(results.items())
        if not rows:
            raise ValueError("format_results: no results to format")
        for name, res in rows:
            if not _is_result(res):
                raise ValueError(f"format_results: entry {name!r} is not a result dict with 'mAP'")
    width = max([7] + [len(str(name)) for name, _ in rows])
    lines = [f"{'dataset':<{width}}" + "".join(f"{title:>8}" for _, title in _COLUMNS)]
    for name, res in rows:
        cells = []
        for key, _ in _COLUMNS:
            value = res.get(key)
            if value is None or not math.isfinite(float(value)):
                cells.append(f"{'-':>8}")
            else:
                cells.append(f"{100.0 * float(value):>7.1f}%")
        lines.append(f"{str(name):<{width}}" + "".join(cells))
    return "\n".join(lines)


def print_results(results: Mapping[str, Any], log: logging.Logger | None = None) -> str:
    """Log the :func:`format_results` table (INFO, on ``log`` or this module's logger).

    Returns the table.
    """
    table = format_results(results)
    (log or logger).info("results:\n%s", table)
    return table
