"""CUHK03 new protocol (Zhong et al., CVPR 2017): the ``cuhk03-np`` Market-style release."""
from __future__ import annotations

from reid.data.datasets.base import ReIDDataset
from reid.data.datasets.market_style import read_market_style
from reid.data.datasets.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register("cuhk03_np")
def cuhk03_np(root: str, labeled: bool = False) -> ReIDDataset:
    """CUHK03-NP under ``root/cuhk03-np/{labeled,detected}`` (``root/cuhk03_np/...`` also works).

    Args:
        root: data root.
        labeled: use the hand-labelled boxes instead of the detected ones.

    767 train ids / 700 test ids; 1,400 queries; cameras 0..1.
    """
    kind = "labeled" if labeled else "detected"
    return read_market_style("cuhk03_np", root, [f"cuhk03-np/{kind}", f"cuhk03_np/{kind}"])
