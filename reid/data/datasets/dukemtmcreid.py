"""DukeMTMC-reID (Zheng et al., ICCV 2017): ``root/dukemtmcreid`` in the Market layout."""
from __future__ import annotations

from reid.data.datasets.base import ReIDDataset
from reid.data.datasets.market_style import read_market_style
from reid.data.datasets.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register("dukemtmcreid")
def dukemtmcreid(root: str) -> ReIDDataset:
    """DukeMTMC-reID under ``root/dukemtmcreid`` (or ``root/dukemtmcreid/DukeMTMC-reID``).

    Names ``PPPP_cC_fFFFFFFF.jpg``; 702 train ids (16,522 images), 2,228 queries, 17,661
    gallery images, cameras 0..7.
    """
    return read_market_style("dukemtmcreid", root, ["dukemtmcreid", "dukemtmcreid/DukeMTMC-reID"])
