"""VehicleX (Yao et al., ECCV 2020), synthetic vehicles in the VeRi-style layout.

The released training set (``image_train/``, names ``VVVV_cCCC_*.jpg``) is what domain
adaptation uses (SpCL: VehicleX -> VeRi-776), so only ``image_train/`` is required; query and
gallery are parsed when both ``image_query/`` and ``image_test/`` exist and are empty otherwise.
"""
from __future__ import annotations

from reid.data.datasets.base import ReIDDataset
from reid.data.datasets.common import find_dataset_dir, make_dataset
from reid.data.datasets.registry import DATASET_REGISTRY
from reid.data.datasets.veri import parse_veri_split, veri_layout_lines


@DATASET_REGISTRY.register("vehiclex")
def vehiclex(root: str) -> ReIDDataset:
    """VehicleX under ``root/vehiclex`` (or ``root/vehiclex/AIC20_ReID_Simulation``).

    Camera ids are the camera number minus 1. ``extra["train_only"]`` is True when the test
    folders are absent (the query and gallery lists are then empty; do not evaluate on it).
    """
    base = find_dataset_dir(
        root, "vehiclex", ["vehiclex", "vehiclex/AIC20_ReID_Simulation"], ["image_train"],
        veri_layout_lines("vehiclex"),
    )
    train = parse_veri_split(base, "train", "vehiclex")
    has_test = (base / "image_query").is_dir() and (base / "image_test").is_dir()
    query = parse_veri_split(base, "query", "vehiclex") if has_test else []
    gallery = parse_veri_split(base, "gallery", "vehiclex") if has_test else []
    return make_dataset(
        "vehiclex", base, train, query, gallery, extra={"train_only": not has_test},
        allow_empty=() if has_test else ("query", "gallery"),
    )
