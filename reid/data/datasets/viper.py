"""VIPeR (Gray et al., PETS 2007): 632 identities, one image in ``cam_a/`` and one in ``cam_b/``."""
from __future__ import annotations

import re

from reid.data.datasets.base import ReIDDataset
from reid.data.datasets.registry import DATASET_REGISTRY
from reid.data.datasets.two_camera import read_two_camera

VIPER_NAME = re.compile(r"^(\d+)_")


@DATASET_REGISTRY.register("viper")
def viper(root: str, split_seed: int = 0) -> ReIDDataset:
    """VIPeR under ``root/viper`` (or ``root/viper/VIPeR``), names ``PPP_AAA.bmp``.

    Split: 316 train / 316 test identities drawn with ``split_seed``; test queries are the
    ``cam_a`` images (camid 0), the gallery the ``cam_b`` images (camid 1).
    """
    return read_two_camera(
        "viper", root, ["viper", "viper/VIPeR"], VIPER_NAME, "PPP_AAA.bmp (identity_angle)",
        split_seed,
    )
