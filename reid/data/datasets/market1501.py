"""Market-1501 (Zheng et al., ICCV 2015): ``root/market1501`` in the Market layout."""
from __future__ import annotations

from reid.data.datasets.base import ReIDDataset
from reid.data.datasets.market_style import read_market_style
from reid.data.datasets.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register("market1501")
def market1501(root: str) -> ReIDDataset:
    """Market-1501 under ``root/market1501`` (or ``root/market1501/Market-1501-v15.09.15``).

    751 train ids (12,936 images), 750 query ids (3,368 images), 15,913 gallery images (750 ids
    plus the pid 0 distractors; the pid -1 junk images are dropped), cameras 0..5.
    """
    return read_market_style(
        "market1501", root, ["market1501", "market1501/Market-1501-v15.09.15"]
    )
