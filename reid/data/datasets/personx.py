"""PersonX (Sun & Zheng, CVPR 2019), synthetic persons: ``root/personx`` in the Market layout."""
from __future__ import annotations

from reid.data.datasets.base import ReIDDataset
from reid.data.datasets.market_style import read_market_style
from reid.data.datasets.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register("personx")
def personx(root: str) -> ReIDDataset:
    """PersonX under ``root/personx`` (or ``root/personx/PersonX``).

    The camera numbers of the released subsets have gaps (e.g. c3, c4, c8, c10, c11, c12), so
    camera ids are the rank of the camera number among all cameras present (0-based).
    """
    return read_market_style(
        "personx", root, ["personx", "personx/PersonX"], contiguous_cams=True
    )
