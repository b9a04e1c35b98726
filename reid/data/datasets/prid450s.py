"""PRID450S (Roth et al., 2014): 450 identities, ``cam_a/img_PPPP.png`` + ``cam_b/img_PPPP.png``."""
from __future__ import annotations

import re

from reid.data.datasets.base import ReIDDataset
from reid.data.datasets.registry import DATASET_REGISTRY
from reid.data.datasets.two_camera import read_two_camera

PRID450S_NAME = re.compile(r"^img_(\d+)\.", re.IGNORECASE)
PRID450S_MASK = re.compile(r"^man_", re.IGNORECASE)


@DATASET_REGISTRY.register("prid450s")
def prid450s(root: str, split_seed: int = 0) -> ReIDDataset:
    """PRID450S under ``root/prid450s``; the segmentation masks ``man_PPPP.png`` are ignored.

    Split: 225 train / 225 test identities drawn with ``split_seed``; test queries are the
    ``cam_a`` images (camid 0), the gallery the ``cam_b`` images (camid 1).
    """
    return read_two_camera(
        "prid450s", root, ["prid450s"], PRID450S_NAME, "img_PPPP.png", split_seed,
        ignore=PRID450S_MASK,
    )
